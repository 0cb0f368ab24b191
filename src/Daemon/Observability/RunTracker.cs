using System.Collections.Concurrent;
using Backupd.Daemon.Runs;

namespace Backupd.Daemon.Observability;

/// <summary>A backup running in this daemon, with its newest progress and when its overlay appeared.</summary>
public sealed record RunningJob(ObservedRun Run, string Step, long Bytes, long? Total, DateTimeOffset? OverlaySince)
{
    public double? Percent => Total is > 0 ? Math.Min(100.0, 100.0 * Bytes / Total.Value) : null;
}

/// <summary>
/// The daemon's live view of its running backups (the catalog sees them only once a second and not the overlay's
/// age): read by metrics, the status page and systemd STATUS=.
/// </summary>
public sealed class RunTracker(TimeProvider clock) : IRunObserver
{
    private readonly ConcurrentDictionary<long, RunningJob> _jobs = new();

    public IReadOnlyList<RunningJob> Running => _jobs.Values.OrderBy(j => j.Run.StartedAt).ToList();

    public void Started(ObservedRun run) => _jobs[run.Key] = new RunningJob(run, "starting", 0, null, null);

    public void Progress(ObservedRun run, RunProgress progress) =>
        _jobs.AddOrUpdate(run.Key,
            _ => new RunningJob(run, progress.Step, progress.Bytes, progress.TotalBytes, OverlayStep(progress.Step) ? clock.GetUtcNow() : null),
            (_, old) => old with
            {
                Step = progress.Step, Bytes = progress.Bytes, Total = progress.TotalBytes,
                // The overlay exists from the end of the snapshot until the commit's pivot.
                OverlaySince = old.OverlaySince ?? (OverlayStep(progress.Step) ? clock.GetUtcNow() : null),
            });

    public void Finished(ObservedRun run, RunEnd outcome) => _jobs.TryRemove(run.Key, out _);

    public void Verified(string domain, string? policy, string pointId, bool ok, string detail) { }

    private static bool OverlayStep(string step) => step is "copy" or "commit";
}
