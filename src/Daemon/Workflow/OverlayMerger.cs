using System.Diagnostics;
using Backupd.Daemon.Libvirt;
using Microsoft.Extensions.Logging;

namespace Backupd.Daemon.Workflow;

/// <summary>Where the active commit of one disk is: QEMU's block-job position (bytes merged of the bytes to merge; end grows while the guest writes).</summary>
public sealed record CommitProgress(string Target, long Done, long Total);

/// <summary>How a disk ended up after a merge attempt.</summary>
public sealed record MergeOutcome(bool BackOnBase, TimeSpan Elapsed, string? Problem);

/// <summary>
/// Gets a disk off one of our overlays and back on its base, live (active commit SHALLOW, READY,
/// pivot, confirm from the live XML) or offline (qemu-img commit). Shared by the workflow's finally
/// and by recovery. Never deletes an overlay unless libvirt shows the disk on its base, or the
/// overlay's data was committed offline.
/// </summary>
public sealed class OverlayMerger(IHypervisor hypervisor, IImageTool images, WorkflowOptions options, ILogger logger)
{
    /// <summary>How often the commit's position is read while waiting for READY (the catalog row is written once a second anyway).</summary>
    public static readonly TimeSpan ProgressInterval = TimeSpan.FromSeconds(1);

    /// <summary>The commit's position while waiting for READY, and once more at READY; called on the merging thread.</summary>
    public Action<CommitProgress>? OnProgress { get; set; }

    /// <summary>Live merge with retries. Does not throw: failures come back as a problem.</summary>
    public async Task<MergeOutcome> MergeLiveAsync(string uuid, JournalDisk disk)
    {
        var clock = Stopwatch.StartNew();
        string? problem = null;
        for (var attempt = 1; attempt <= options.CommitAttempts; attempt++)
        {
            try
            {
                problem = await TryMergeLiveOnceAsync(uuid, disk);
                if (problem is null) return new MergeOutcome(true, clock.Elapsed, null);
            }
            catch (Exception e) when (e is LibvirtException or InjectedFaultException or FormatException)
            {
                problem = Hints.Explain(e);
            }
            logger.MergeBackAttemptFailed(
                disk.Target, disk.OverlayPath, attempt, options.CommitAttempts, problem);
            if (!StillRunning(uuid))
            {
                // Stopped or undefined meanwhile: a live merge is no longer possible; recovery commits it offline.
                return new MergeOutcome(false, clock.Elapsed, $"{problem}; the domain stopped during the merge: run 'backupd recover'");
            }
            if (attempt < options.CommitAttempts) await Task.Delay(options.CommitRetryDelay * attempt);
        }
        return new MergeOutcome(false, clock.Elapsed, problem);
    }

    private bool StillRunning(string uuid)
    {
        try { return hypervisor.FindDomain(uuid) is { IsActive: true }; }
        catch (LibvirtException) { return true; } // cannot tell: keep trying
    }

    /// <summary>One attempt; returns null when the disk is confirmed on its base, else what went wrong.</summary>
    private async Task<string?> TryMergeLiveOnceAsync(string uuid, JournalDisk disk)
    {
        var live = LiveDisk(uuid, disk.Target);
        if (live.SourcePath == disk.Base.Path) return null; // already pivoted (a previous attempt, or a run that died after the pivot)
        if (live.SourcePath != disk.OverlayPath)
            return $"disk {disk.Target} is on '{live.SourcePath}', neither its base '{disk.Base.Path}' nor overlay '{disk.OverlayPath}'; left alone";
        if ((live.BackingChain.Count > 0 ? live.BackingChain[0].Path : null) != disk.Base.Path)
            return $"overlay '{disk.OverlayPath}' of {disk.Target} does not sit on the base '{disk.Base.Path}' (chain: {string.Join(" <- ", live.BackingChain.Select(b => b.Path))}); left alone";

        var job = hypervisor.GetBlockJob(uuid, disk.Target);
        if (job is null)
        {
            hypervisor.StartActiveCommit(uuid, disk.Target, options.CommitBandwidth);
        }
        else if (job.Type != BlockJobType.ActiveCommit)
        {
            return $"disk {disk.Target} has a {job.Type} block job that is not ours; not touching it";
        }
        Faults.Hit(Faults.MidCommit);

        var ready = await WaitReadyAsync(uuid, disk.Target);
        if (ready != BlockJobOutcome.Ready)
        {
            // Gone without a pivot means someone aborted it; the next attempt starts a new commit.
            return $"active commit of {disk.Target} did not become ready: {ready}";
        }
        hypervisor.Pivot(uuid, disk.Target);
        var gone = await hypervisor.WaitForBlockJobAsync(uuid, disk.Target, BlockJobGoal.Gone, options.PivotTimeout);
        if (gone != BlockJobOutcome.Gone) return $"pivot of {disk.Target} did not finish: {gone}";

        live = LiveDisk(uuid, disk.Target);
        return live.SourcePath == disk.Base.Path
            ? null
            : $"after the pivot {disk.Target} is on '{live.SourcePath}', not its base '{disk.Base.Path}'";
    }

    /// <summary>
    /// The wait for READY in slices of <see cref="ProgressInterval"/>, reading the job's cur/end between them, so a long
    /// commit shows how far it is (bar, status, journal) instead of sitting at "copy 100 %". Same overall time box.
    /// </summary>
    private async Task<BlockJobOutcome> WaitReadyAsync(string uuid, string target)
    {
        if (OnProgress is null) return await hypervisor.WaitForBlockJobAsync(uuid, target, BlockJobGoal.Ready, options.CommitReadyTimeout);
        var clock = Stopwatch.StartNew();
        while (true)
        {
            ReportPosition(uuid, target, ready: false);
            var left = options.CommitReadyTimeout - clock.Elapsed;
            if (left < TimeSpan.Zero) left = TimeSpan.Zero;
            var outcome = await hypervisor.WaitForBlockJobAsync(uuid, target, BlockJobGoal.Ready, left < ProgressInterval ? left : ProgressInterval);
            if (outcome == BlockJobOutcome.Ready) ReportPosition(uuid, target, ready: true);
            if (outcome != BlockJobOutcome.TimedOut || clock.Elapsed >= options.CommitReadyTimeout) return outcome;
        }
    }

    /// <summary>Best effort: a failed read is left to the wait, which sees the same libvirt.</summary>
    private void ReportPosition(string uuid, string target, bool ready)
    {
        BlockJobStatus? job;
        try { job = hypervisor.GetBlockJob(uuid, target); }
        catch (LibvirtException) { return; }
        if (job is not { Type: BlockJobType.ActiveCommit }) return;
        // At READY everything written so far is merged: show it whole even when QEMU's counters lag a poll behind.
        var total = (long)Math.Min(job.End, long.MaxValue);
        try { OnProgress?.Invoke(new CommitProgress(target, ready ? total : (long)Math.Min(job.Cur, (ulong)total), total)); }
        catch (Exception e) when (e is not (InjectedFaultException or OutOfMemoryException))
        {
            // A progress sink's failure must never keep the guest on its overlay.
        }
    }

    private DomainDisk LiveDisk(string uuid, string target) =>
        DomainXml.ParseDisks(hypervisor.GetXml(uuid, DomainXmlKind.Live)).FirstOrDefault(d => d.Target == target)
        ?? throw new LibvirtException($"disk {target} is no longer in the live definition of domain {uuid}");

    /// <summary>
    /// Offline: the domain is not running on the overlay. Commits its data into the base with qemu-img
    /// unless the journal says it was already merged (re-committing a stale overlay would overwrite newer data).
    /// </summary>
    public async Task<MergeOutcome> MergeOfflineAsync(JournalDisk disk)
    {
        var clock = Stopwatch.StartNew();
        try
        {
            if (!disk.Merged && File.Exists(disk.OverlayPath))
            {
                var chain = await images.GetChainAsync(disk.OverlayPath, CancellationToken.None);
                var backing = chain.Count > 1 ? chain[1].Path : null;
                if (backing != disk.Base.Path)
                    return new MergeOutcome(false, clock.Elapsed, $"overlay '{disk.OverlayPath}' is backed by '{backing}', not '{disk.Base.Path}'; not committing it");
                await images.CommitAsync(disk.OverlayPath, CancellationToken.None);
            }
            return new MergeOutcome(true, clock.Elapsed, null);
        }
        catch (IOException e)
        {
            return new MergeOutcome(false, clock.Elapsed, e.Message);
        }
    }

    /// <summary>
    /// libvirt rewrites the persistent definition to the overlay at snapshot time (even with
    /// NO_METADATA); points the listed disks back at their base. A no-op when already right.
    /// </summary>
    public void FixPersistentDefinition(string uuid, IEnumerable<JournalDisk> disks)
    {
        var repoints = disks.ToDictionary(d => d.Target, d => new DiskRepoint(d.OverlayPath, d.Base));
        if (repoints.Count == 0) return;
        var fixedXml = DomainXml.PointDisksAt(hypervisor.GetXml(uuid, DomainXmlKind.Persistent), repoints);
        if (fixedXml is null) return;
        hypervisor.DefineXml(fixedXml);
        logger.DefinitionRepointed(uuid, string.Join(", ", repoints.Keys));
    }

    /// <summary>Deletes an overlay whose data is in the base. Missing is fine.</summary>
    public void DeleteOverlay(JournalDisk disk)
    {
        if (!OverlayNaming.IsOverlay(disk.OverlayPath))
            throw new InvalidOperationException($"refusing to delete '{disk.OverlayPath}': not a backupd overlay name");
        File.Delete(disk.OverlayPath);
        disk.OverlayDeleted = true;
        logger.OverlayDeleted(disk.OverlayPath, disk.Target);
    }
}
