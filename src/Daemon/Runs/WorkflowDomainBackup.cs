using Backupd.Daemon.Libvirt;
using Backupd.Daemon.Workflow;
using Backupd.Storage.Catalog;
using Microsoft.Extensions.Logging;

namespace Backupd.Daemon.Runs;

/// <summary>
/// The live workflow failed after preflight; the guest is back on its base images (unless <see cref="NeedsAttention"/>).
/// <see cref="Result"/> is the workflow's own per-disk account, for the command's output, when it got that far.
/// </summary>
public sealed class BackupFailedException(string message, bool needsAttention, bool interrupted = false) : Exception(message)
{
    /// <summary>An overlay could not be merged back (exit code NeedsAttention).</summary>
    public bool NeedsAttention { get; } = needsAttention;

    /// <summary>Stopped by cancellation (a signal, the daemon stopping) with the disks back on their base: recorded `interrupted`.</summary>
    public bool Interrupted { get; } = interrupted;

    /// <summary>What the workflow reported (null when it failed before returning one).</summary>
    public BackupResult? Result { get; init; }

    /// <summary>The catalog run that recorded the failure; null for a run the catalog does not record.</summary>
    public long? CatalogRunId { get; init; }

    /// <summary>Whether a run ending with <paramref name="e"/> was stopped rather than failed.</summary>
    public static bool IsInterruption(Exception e) => e is OperationCanceledException or BackupFailedException { Interrupted: true };
}

/// <summary>
/// <see cref="IDomainBackup"/> over the real workflow for the one domain <see cref="BackupService"/> resolved:
/// recovery of leftovers from an earlier run first, then <see cref="BackupWorkflow"/> into the spec's repository.
/// </summary>
internal sealed class WorkflowDomainBackup(IHypervisor hypervisor, IImageTool images, BackupSpec spec, BackupDomain domain, IReadOnlyList<string> includeDisks, ILogger logger) : IDomainBackup
{
    /// <summary>Forwarded from the workflow (for a progress bar), besides the catalog's progress records.</summary>
    public Action<BackupProgress>? OnProgress { get; init; }

    /// <summary>The domain the service resolved (this instance backs up no other).</summary>
    public BackupDomain? Resolve(string nameOrUuid) => domain;

    public async Task<DomainBackupOutcome> BackupAsync(BackupDomain resolved, long? catalogRunId, IProgress<RunProgress> progress, CancellationToken ct)
    {
        progress.Report(new RunProgress("recovery"));
        var recovery = await new Recovery(hypervisor, images, spec.Options, logger).RecoverDomainAsync(resolved.Uuid.ToString(), dryRun: false, ct);
        if (!recovery.AllResolved)
            throw new BackupFailedException($"'{resolved.Name}' is still on an overlay from an earlier run and recovery could not fix it; see `backupd recover` and docs/operations.md", needsAttention: true)
            { CatalogRunId = catalogRunId };

        using var repository = BackupTargets.Open(spec.Repository, spec.Options, spec.BlockSize);
        progress.Report(new RunProgress("snapshot"));
        var commits = new CommitTotals();
        var workflow = new BackupWorkflow(hypervisor, images, repository, spec.Options, logger)
        {
            // Off: no checkpoint is created, and without one nothing is planned (the planner is never asked).
            Planner = spec.Options.ChangedBlockTracking ? new LibnbdPlanner() : null,
            OnProgress = p =>
            {
                progress.Report(new RunProgress("copy", p.TotalBytesDone, p.TotalBytes));
                OnProgress?.Invoke(p);
            },
            // Written to the catalog at once (a new step): a run killed while merging back shows `commit`, not `copy`.
            // Its bytes are the commit's own (QEMU's cur/end of the block job), reported from the first poll on.
            OnCommitStarting = () => progress.Report(new RunProgress("commit")),
            OnCommitProgress = p => progress.Report(commits.Add(p)),
        };
        BackupResult result;
        try { result = await workflow.RunAsync(new BackupRequest(resolved.Uuid.ToString(), includeDisks, spec.ExcludeDisks, spec.Quiesce) { Read = spec.Read }, ct); }
        catch (BackupRefusedException e) when (e.Kind == RefusalKind.QuiesceUnavailable)
        {
            // The refused run is not kept in the catalog: the event is its record.
            await RecordQuiesceAsync(null, resolved, new QuiesceReport("required", "refused", e.Message));
            throw;
        }
        if (result.Quiesce is { } quiesce) await RecordQuiesceAsync(catalogRunId, resolved, quiesce);
        if (result.Outcome != RunOutcome.Succeeded || result.RestorePoint is null)
            throw new BackupFailedException(FailureText(result, resolved.Name), result.Outcome == RunOutcome.NeedsAttention,
                interrupted: result.Outcome == RunOutcome.Failed && ct.IsCancellationRequested) { Result = result, CatalogRunId = catalogRunId };

        var stats = new RunStats(
            result.Disks.Sum(d => d.BytesRead), result.Disks.Sum(d => d.BytesWritten), result.CopyTime, result.OverlayLifetime, result.CommitTime,
            result.Consistency is { } c ? ConsistencyNames.Of(c) : null);
        return new DomainBackupOutcome(result.RestorePoint, repository.Description, stats, result);
    }

    /// <summary>
    /// The run's error for the catalog, the log and notifications. A run left on an overlay says which disk, on which
    /// overlay, why the merge-back failed and what the operator does (its copy may have worked: no Error then).
    /// </summary>
    internal static string FailureText(BackupResult result, string domain)
    {
        if (result.Outcome != RunOutcome.NeedsAttention) return result.Error ?? $"backup of '{domain}' ended {result.Outcome}";
        var left = result.Disks.Where(d => !d.BackOnBase).Select(d => $"{d.Target} is still on overlay {d.OverlayPath}: {d.Problem}");
        return $"{(result.Error is null ? "" : result.Error + "; ")}merge-back failed: {string.Join("; ", left)}; run 'backupd recover --domain {domain}'";
    }

    /// <summary>
    /// The run's quiesce report to runs.detail, and a quiesce event when it did not go to plan. Best effort:
    /// the catalog being away must not fail a backup that worked (the journal and the log have it too).
    /// </summary>
    private async Task RecordQuiesceAsync(long? runId, BackupDomain target, QuiesceReport report)
    {
        if (spec.Catalog?.Store is not { } store) return;
        try
        {
            using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(10));
            await store.RecordQuiesceAsync(runId, target.Uuid, report.ToJson(), report.Noteworthy, report.Ok, ProcessIdentity.Current, timeout.Token);
        }
        catch (Exception e) when (RunRecordFinisher.IsOutage(e) || e is OperationCanceledException)
        {
            GuestAgent.GuestAgentLog.QuiesceNotRecorded(logger, target.Name, e);
        }
    }

    /// <summary>The run's commit position over all its disks: each disk's newest cur/end, summed (disks merge one after another).</summary>
    internal sealed class CommitTotals
    {
        private readonly Dictionary<string, CommitProgress> _disks = [];

        public RunProgress Add(CommitProgress p)
        {
            _disks[p.Target] = p;
            return new RunProgress("commit", _disks.Values.Sum(d => d.Done), _disks.Values.Sum(d => d.Total));
        }
    }
}
