using Backupd.Daemon.Libvirt;
using Backupd.Daemon.Workflow;
using Backupd.Storage.Catalog;
using Microsoft.Extensions.Logging;

namespace Backupd.Daemon.Runs;

/// <summary>The live workflow failed after preflight; the guest is back on its base images.</summary>
public sealed class BackupFailedException(string message, bool needsAttention, bool interrupted = false) : Exception(message)
{
    /// <summary>An overlay could not be merged back (exit code NeedsAttention).</summary>
    public bool NeedsAttention { get; } = needsAttention;

    /// <summary>Stopped by cancellation (a signal, the daemon stopping) with the disks back on their base: recorded `interrupted`.</summary>
    public bool Interrupted { get; } = interrupted;

    /// <summary>Whether a run ending with <paramref name="e"/> was stopped rather than failed.</summary>
    public static bool IsInterruption(Exception e) => e is OperationCanceledException or BackupFailedException { Interrupted: true };
}

/// <summary>
/// <see cref="IDomainBackup"/> over the real workflow: recovery of leftovers from an earlier run
/// first, then <see cref="BackupWorkflow"/> into the versioned repository at <paramref name="repositoryDirectory"/>.
/// </summary>
public sealed class WorkflowDomainBackup(IHypervisor hypervisor, IImageTool images, WorkflowOptions options, string repositoryDirectory, ILogger logger) : IDomainBackup
{
    /// <summary>Include/exclude disks and quiesce mode for every run.</summary>
    public IReadOnlyList<string> IncludeDisks { get; init; } = [];
    public IReadOnlyList<string> ExcludeDisks { get; init; } = [];
    public QuiesceMode Quiesce { get; init; } = QuiesceMode.Preferred;
    /// <summary>Block size for files new to the repository (a policy's block-size); null: the repository's default.</summary>
    public int? BlockSize { get; init; }

    /// <summary>Forwarded from the workflow (for a progress bar), besides the catalog's progress records.</summary>
    public Action<BackupProgress>? OnProgress { get; init; }

    /// <summary>Where each run's quiesce report goes (runs.detail, and a quiesce event when it did not go to plan); null: nowhere.</summary>
    public CatalogStore? QuiesceRecords { get; init; }

    /// <summary>The workflow's full result of the last run (also when it failed), for the command's output.</summary>
    public BackupResult? LastResult { get; private set; }

    /// <summary>The catalog run id of the last run (also when it failed).</summary>
    public long? LastRunId { get; private set; }

    public BackupTarget? Resolve(string nameOrUuid) =>
        hypervisor.FindDomain(nameOrUuid) is { } d ? new BackupTarget(Guid.Parse(d.Uuid), d.Name) : null;

    public async Task<DomainBackupOutcome> BackupAsync(BackupTarget target, long runId, IProgress<RunProgress> progress, CancellationToken ct)
    {
        LastRunId = runId;
        progress.Report(new RunProgress("recovery"));
        var recovery = await new Recovery(hypervisor, images, options, logger).RecoverDomainAsync(target.Uuid.ToString(), dryRun: false, ct);
        if (!recovery.AllResolved)
            throw new BackupFailedException($"'{target.Name}' is still on an overlay from an earlier run and recovery could not fix it; see `backupd recover`", needsAttention: true);

        using var repository = BackupTargets.Open(repositoryDirectory, options, BlockSize);
        progress.Report(new RunProgress("snapshot"));
        var copied = new RunProgress("copy");
        var workflow = new BackupWorkflow(hypervisor, images, repository, options, logger)
        {
            OnProgress = p =>
            {
                copied = new RunProgress("copy", p.TotalBytesDone, p.TotalBytes);
                progress.Report(copied);
                OnProgress?.Invoke(p);
            },
            // Written to the catalog at once (a new step): a run killed while merging back shows `commit`, not `copy`.
            OnCommitStarting = () => progress.Report(copied with { Step = "commit" }),
        };
        BackupResult result;
        try { result = await workflow.RunAsync(new Workflow.BackupRequest(target.Uuid.ToString(), IncludeDisks, ExcludeDisks, Quiesce), ct); }
        catch (BackupRefusedException e) when (e.Kind == RefusalKind.QuiesceUnavailable)
        {
            // The refused run is not kept in the catalog: the event is its record.
            await RecordQuiesceAsync(null, target, new QuiesceReport("required", "refused", e.Message));
            throw;
        }
        LastResult = result;
        if (result.Quiesce is { } quiesce) await RecordQuiesceAsync(runId, target, quiesce);
        if (result.Outcome != RunOutcome.Succeeded || repository.LastCommitted is null)
            throw new BackupFailedException(result.Error ?? $"backup of '{target.Name}' ended {result.Outcome}", result.Outcome == RunOutcome.NeedsAttention,
                interrupted: result.Outcome == RunOutcome.Failed && ct.IsCancellationRequested);

        var stats = new RunStats(
            result.Disks.Sum(d => d.BytesRead), result.Disks.Sum(d => d.BytesWritten), result.CopyTime, result.OverlayLifetime, result.CommitTime,
            result.Consistency switch
            {
                Consistency.ApplicationConsistent => "application-consistent",
                Consistency.CrashConsistent => "crash-consistent",
                Consistency.ShutOff => "shut-off",
                _ => null,
            });
        return new DomainBackupOutcome(repository.LastCommitted, repository.Description, stats);
    }

    /// <summary>Best effort: the catalog being away must not fail a backup that worked (the journal and the log have it too).</summary>
    private async Task RecordQuiesceAsync(long? runId, BackupTarget target, QuiesceReport report)
    {
        if (QuiesceRecords is null) return;
        try
        {
            using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(10));
            await QuiesceRecords.RecordQuiesceAsync(runId, target.Uuid, report.ToJson(), report.Noteworthy, report.Ok, ProcessIdentity.Current, timeout.Token);
        }
        catch (Exception e) when (RunRecordFinisher.IsOutage(e) || e is OperationCanceledException)
        {
            GuestAgent.GuestAgentLog.QuiesceNotRecorded(logger, target.Name, e);
        }
    }
}
