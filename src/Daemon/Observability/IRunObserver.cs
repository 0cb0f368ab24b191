using Backupd.Daemon.Runs;
using Backupd.Storage.Catalog;

namespace Backupd.Daemon.Observability;

/// <summary>A backup as the observers see it: the domain, the policy that scheduled it (null for a CLI run), when it began.</summary>
public sealed record ObservedRun(string Domain, string? Policy, string Trigger, DateTimeOffset StartedAt)
{
    /// <summary>Unique within the process: the tracker's key (the catalog run id is not known until the run has its lock).</summary>
    public long Key { get; } = Interlocked.Increment(ref _next);
    private static long _next;
}

/// <summary>How a run ended: <see cref="Outcome"/> is a RunStates value or "refused" (nothing was done).</summary>
public sealed record RunEnd(string Outcome, RunStats? Stats, string? PointId, string? Step, string? Error, bool MergeBackFailed = false)
{
    public const string Refused = "refused";
    public bool Succeeded => Outcome == RunStates.Succeeded;

    /// <summary>A run that threw: refused (nothing done), interrupted (stopped, disks back on base) or failed.</summary>
    public static RunEnd From(Exception e, string? step) => new(
        e is Workflow.BackupRefusedException or DomainBusyException or DomainNotFoundException ? Refused
            : BackupFailedException.IsInterruption(e) ? RunStates.Interrupted : RunStates.Failed,
        null, null, step, e.Message, MergeBackFailed: e is BackupFailedException { NeedsAttention: true });
}

/// <summary>
/// Hooks of the run lifecycle that metrics, notifications, the status page and systemd STATUS= hang on. Kept this
/// small so the runner that calls it (Scheduling/CatalogBackupRunner today) needs three lines, whatever its shape.
/// Implementations return at once and never throw: a run never waits for or fails by its observers.
/// </summary>
public interface IRunObserver
{
    void Started(ObservedRun run);
    void Progress(ObservedRun run, RunProgress progress);
    void Finished(ObservedRun run, RunEnd outcome);
    /// <summary>A verify of a restore point (after a backup or scheduled) ended.</summary>
    void Verified(string domain, string? policy, string pointId, bool ok, string detail);
}

/// <summary>Forwards every hook to several observers; one that throws is logged by the caller's log and skipped.</summary>
public sealed class RunObservers(IEnumerable<IRunObserver> observers) : IRunObserver
{
    private readonly IRunObserver[] _all = observers.ToArray();

    public void Started(ObservedRun run) => Each(o => o.Started(run));
    public void Progress(ObservedRun run, RunProgress progress) => Each(o => o.Progress(run, progress));
    public void Finished(ObservedRun run, RunEnd outcome) => Each(o => o.Finished(run, outcome));
    public void Verified(string domain, string? policy, string pointId, bool ok, string detail) => Each(o => o.Verified(domain, policy, pointId, ok, detail));

    /// <summary>The progress hook as the runner's IProgress observer.</summary>
    public IProgress<RunProgress> ProgressFor(ObservedRun run) => new Forward(this, run);

    private void Each(Action<IRunObserver> call)
    {
        foreach (var o in _all)
        {
            try { call(o); }
            catch (Exception) { /* an observer's bug must not fail a backup; observers log their own errors */ }
        }
    }

    private sealed class Forward(RunObservers owner, ObservedRun run) : IProgress<RunProgress>
    {
        public void Report(RunProgress value) => owner.Progress(run, value);
    }
}
