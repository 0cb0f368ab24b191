using Backupd.Daemon.Libvirt;
using Microsoft.Extensions.Logging;

namespace Backupd.Daemon.Workflow;

/// <summary>One thing recovery did (or would do, with --dry-run) for one overlay.</summary>
public sealed record RecoveryAction(string Domain, string Target, string Overlay, string Action, bool Done, string? Problem);

public sealed record RecoveryReport(IReadOnlyList<RecoveryAction> Actions)
{
    /// <summary>True when nothing is left on an overlay (or nothing was found).</summary>
    public bool AllResolved => Actions.All(a => a.Problem is null);
}

/// <summary>
/// Brings every domain back onto its base images after a run that died. The truth comes from
/// libvirt (live and persistent XML: any source with a backupd overlay name); the journal adds which
/// run made it, whether it was already merged, and overlays of transient domains that are gone.
/// <list type="bullet">
/// <item>running on an overlay: active commit (SHALLOW) + pivot, or just the pivot if a job is ready;</item>
/// <item>shut off on an overlay: qemu-img commit, point the persistent XML back at the base;</item>
/// <item>running on the base but the definition or the file still there: fix the definition, delete;</item>
/// <item>domain gone: qemu-img commit of the overlay named in the journal.</item>
/// </list>
/// Never starts or stops a domain.
/// </summary>
public sealed class Recovery(IHypervisor hypervisor, IImageTool images, WorkflowOptions options, ILogger logger)
{
    private readonly RunJournal journal = new(options.StateDirectory);
    private readonly OverlayMerger merger = new(hypervisor, images, options, logger);

    /// <summary>Each live merge's active-commit position (`recover`'s progress bar on a terminal).</summary>
    public Action<CommitProgress>? OnCommitProgress { get => merger.OnProgress; init => merger.OnProgress = value; }
    private readonly GuestAgent.ThawPending thawPending = new(options.StateDirectory);

    /// <summary>
    /// A run could not confirm the guest thawed after a failed quiesce: check and thaw now. An agent that still
    /// does not answer is not a recovery failure (nothing is on an overlay); it stays pending and is reported.
    /// </summary>
    private RecoveryAction SettleThaw(DomainInfo domain, GuestAgent.PendingThaw pending, bool dryRun)
    {
        const string what = "thaw the guest's file systems (quiesce of run {0} failed)";
        var action = string.Format(System.Globalization.CultureInfo.InvariantCulture, what, pending.RunId);
        if (dryRun) return new RecoveryAction(domain.Name, "-", "-", action, false, null);
        var outcome = new GuestAgent.AgentGuard(hypervisor, options.AgentTimeout, logger).EnsureThawed(domain.Uuid, domain.Name, TimeSpan.Zero);
        if (outcome.State == GuestAgent.ThawState.Unconfirmed)
            return new RecoveryAction(domain.Name, "-", "-", $"{action}: still pending, {outcome.Problem}", false, null);
        thawPending.Clear(domain.Uuid);
        return new RecoveryAction(domain.Name, "-", "-", $"{action}: {(outcome.State == GuestAgent.ThawState.Thawed ? "thawed" : "was not frozen")}", true, null);
    }

    /// <summary>The UUID of a domain by name or UUID, or of a gone (transient) domain with an open journal entry; null if neither.</summary>
    public string? ResolveDomain(string nameOrUuid) =>
        hypervisor.FindDomain(nameOrUuid)?.Uuid
        ?? journal.OpenEntries().FirstOrDefault(e => string.Equals(e.DomainUuid, nameOrUuid, StringComparison.OrdinalIgnoreCase) || e.DomainName == nameOrUuid)?.DomainUuid;

    /// <summary>Every domain and every open journal entry.</summary>
    public Task<RecoveryReport> RecoverAllAsync(bool dryRun, CancellationToken ct) => RecoverAsync(null, dryRun, ct);

    /// <summary>One domain (by UUID): the runner calls this before each backup of it.</summary>
    public Task<RecoveryReport> RecoverDomainAsync(string domainUuid, bool dryRun, CancellationToken ct) => RecoverAsync(domainUuid, dryRun, ct);

    private async Task<RecoveryReport> RecoverAsync(string? onlyUuid, bool dryRun, CancellationToken ct)
    {
        var actions = new List<RecoveryAction>();
        var entries = journal.OpenEntries().Where(e => onlyUuid is null || e.DomainUuid == onlyUuid).ToList();
        var domains = hypervisor.ListDomains().Where(d => onlyUuid is null || d.Uuid == onlyUuid).ToList();

        foreach (var domain in domains)
        {
            ct.ThrowIfCancellationRequested();
            var mine = entries.Where(e => e.DomainUuid == domain.Uuid).ToList();
            try
            {
                actions.AddRange(await RecoverDomainAsync(domain, mine, dryRun));
            }
            catch (LibvirtException e) when (e.Code == LibvirtErrorCodes.NoDomain)
            {
                continue; // undefined since the listing: nothing of it left to fix in libvirt
            }
            catch (Exception e) when (e is LibvirtException or IOException or InvalidOperationException or FormatException)
            {
                actions.Add(new RecoveryAction(domain.Name, "-", "-", "inspect the domain", false, Hints.Explain(e)));
                logger.RecoveryFailed(e, domain.Name, Hints.Explain(e));
                continue;
            }
            if (!dryRun) CloseResolved(mine);
            if (domain.IsActive && thawPending.Find(domain.Uuid) is { } pending) actions.Add(SettleThaw(domain, pending, dryRun));
        }

        // Journal entries whose domain no longer exists (a transient domain that stopped).
        foreach (var entry in entries.Where(e => domains.All(d => d.Uuid != e.DomainUuid)))
        {
            if (onlyUuid is null && hypervisor.FindDomain(entry.DomainUuid) is not null) continue;
            foreach (var disk in entry.Disks.Where(d => File.Exists(d.OverlayPath)))
                actions.Add(await OfflineAsync(entry.DomainName, disk, "offline commit (domain is gone)", deleteAfter: true, dryRun));
            if (!dryRun) CloseResolved([entry]);
        }
        return new RecoveryReport(actions);
    }

    private async Task<List<RecoveryAction>> RecoverDomainAsync(DomainInfo domain, List<JournalEntry> entries, bool dryRun)
    {
        var actions = new List<RecoveryAction>();
        var live = domain.IsActive ? DomainXml.ParseDisks(hypervisor.GetXml(domain.Uuid, DomainXmlKind.Live)) : [];
        var persistent = domain.Persistent ? DomainXml.ParseDisks(hypervisor.GetXml(domain.Uuid, DomainXmlKind.Persistent)) : [];

        // Overlays in use according to libvirt, plus those the journal knows about (e.g. killed after the pivot).
        var disks = new List<JournalDisk>();
        foreach (var d in live.Concat(persistent).Where(d => OverlayNaming.IsOverlay(d.SourcePath)))
        {
            if (disks.Any(x => x.Target == d.Target && x.OverlayPath == d.SourcePath)) continue;
            var known = entries.SelectMany(e => e.Disks).FirstOrDefault(x => x.Target == d.Target && x.OverlayPath == d.SourcePath);
            disks.Add(known ?? await FromXmlAsync(d));
        }
        foreach (var known in entries.SelectMany(e => e.Disks))
        {
            if (!disks.Any(x => x.Target == known.Target && x.OverlayPath == known.OverlayPath) && File.Exists(known.OverlayPath))
                disks.Add(known);
        }

        // Our overlay below someone else's snapshot: report it, never touch it (merging it needs a decision about theirs).
        foreach (var d in live.Concat(persistent))
        {
            var buried = d.BackingChain.Select(b => b.Path).FirstOrDefault(OverlayNaming.IsOverlay);
            if (buried is null || actions.Any(a => a.Overlay == buried) || disks.Any(x => x.OverlayPath == buried)) continue;
            actions.Add(new RecoveryAction(domain.Name, d.Target, buried, "none", false,
                "the overlay is inside the disk's backing chain (another snapshot sits on top of it): merge it by hand, see docs/operations.md"));
            logger.OverlayBuried(domain.Name, d.Target, buried);
        }
        if (disks.Count == 0) return actions;
        using var domainLock = HostRunLock.TryAcquire(options.StateDirectory, domain.Uuid);
        if (domainLock is null)
        {
            // A run is in progress: its own finally merges its overlays; touching them now would race it.
            actions.AddRange(disks.Select(d => new RecoveryAction(domain.Name, d.Target, d.OverlayPath, "skipped: another backupd process (a backup or a recovery) holds this domain", false, null)));
            return actions;
        }

        var merged = new List<JournalDisk>();
        foreach (var disk in disks)
        {
            var liveDisk = live.FirstOrDefault(d => d.Target == disk.Target);
            var persistentDisk = persistent.FirstOrDefault(d => d.Target == disk.Target);
            RecoveryAction action;
            if (domain.IsActive && liveDisk?.SourcePath == disk.OverlayPath)
            {
                var job = hypervisor.GetBlockJob(domain.Uuid, disk.Target);
                var what = job?.Type == BlockJobType.ActiveCommit ? "pivot the running commit job" : "active commit (shallow) + pivot";
                if (dryRun) action = new RecoveryAction(domain.Name, disk.Target, disk.OverlayPath, what, false, null);
                else
                {
                    var outcome = await merger.MergeLiveAsync(domain.Uuid, disk);
                    action = new RecoveryAction(domain.Name, disk.Target, disk.OverlayPath, what, outcome.BackOnBase, outcome.Problem);
                }
            }
            else if (!domain.IsActive && persistentDisk?.SourcePath == disk.OverlayPath)
            {
                action = await OfflineAsync(domain.Name, disk, disk.Merged ? "repoint the definition (already merged)" : "offline commit (qemu-img) + repoint the definition", deleteAfter: false, dryRun);
            }
            else if (await InsideAChainAsync(live.Concat(persistent), disk.OverlayPath))
            {
                // Another snapshot was stacked on top of our overlay: it is guest data in the middle of a chain.
                action = new RecoveryAction(domain.Name, disk.Target, disk.OverlayPath, "none", false,
                    "the overlay is inside the disk's backing chain (another snapshot sits on top of it): merge it by hand, see docs/operations.md");
            }
            else
            {
                // Not in use: its data is in the base already (pivoted), or it never received any.
                action = new RecoveryAction(domain.Name, disk.Target, disk.OverlayPath,
                    persistentDisk?.SourcePath == disk.OverlayPath ? "repoint the definition" : "delete the unused overlay", !dryRun, null);
            }
            actions.Add(action);
            if (action.Done && action.Problem is null)
            {
                disk.Merged = true;
                merged.Add(disk);
            }
        }

        if (!dryRun && merged.Count > 0)
        {
            if (domain.Persistent) merger.FixPersistentDefinition(domain.Uuid, merged);
            foreach (var disk in merged) merger.DeleteOverlay(disk);
        }
        foreach (var a in actions.Where(a => a.Problem is not null))
            logger.OverlayStillInUse(a.Domain, a.Target, a.Overlay, a.Problem);
        return actions;
    }

    /// <summary>True when a disk's chain (from the XML, or from the images themselves) has the overlay below its top.</summary>
    private async Task<bool> InsideAChainAsync(IEnumerable<DomainDisk> disks, string overlay)
    {
        foreach (var d in disks)
        {
            if (d.BackingChain.Any(b => b.Path == overlay)) return true;
            if (d.SourcePath is null || d.SourcePath == overlay || !File.Exists(d.SourcePath)) continue;
            var chain = await images.GetChainAsync(d.SourcePath, CancellationToken.None); // a shut-off definition lists no chain
            if (chain.Skip(1).Any(c => c.Path == overlay)) return true;
        }
        return false;
    }

    /// <summary>qemu-img commit unless already merged; <paramref name="deleteAfter"/> when no definition needs fixing first.</summary>
    private async Task<RecoveryAction> OfflineAsync(string domainName, JournalDisk disk, string what, bool deleteAfter, bool dryRun)
    {
        if (dryRun) return new RecoveryAction(domainName, disk.Target, disk.OverlayPath, what, false, null);
        var outcome = await merger.MergeOfflineAsync(disk);
        if (outcome.BackOnBase)
        {
            disk.Merged = true;
            if (deleteAfter) merger.DeleteOverlay(disk);
        }
        return new RecoveryAction(domainName, disk.Target, disk.OverlayPath, what, outcome.BackOnBase, outcome.Problem);
    }

    /// <summary>An overlay found in libvirt's XML with no journal entry: its base is the image right below it.</summary>
    private async Task<JournalDisk> FromXmlAsync(DomainDisk disk)
    {
        var overlay = disk.SourcePath!;
        if (disk.BackingChain.Count > 0 && disk.BackingChain[0].Path is { } path)
            return new JournalDisk(disk.Target, new DiskBase(disk.BackingChain[0].Type, path, disk.BackingChain[0].Format ?? "raw"), overlay);
        // A shut-off definition names the overlay with no backingStore: ask the image itself.
        var chain = await images.GetChainAsync(overlay, CancellationToken.None);
        if (chain.Count < 2) throw new InvalidOperationException($"overlay '{overlay}' has no backing file: cannot tell which image it belongs to");
        var baseImage = chain[1];
        return new JournalDisk(disk.Target, new DiskBase(baseImage.Path.StartsWith("/dev/", StringComparison.Ordinal) ? "block" : "file", baseImage.Path, baseImage.Format), overlay);
    }

    private void CloseResolved(IEnumerable<JournalEntry> entries)
    {
        foreach (var entry in entries)
        {
            using var running = HostRunLock.TryAcquire(options.StateDirectory, entry.DomainUuid);
            if (running is null) continue; // that run is still going and keeps its own journal
            if (entry.Disks.All(d => d.Merged || !File.Exists(d.OverlayPath)))
            {
                entry.Error ??= "recovered";
                journal.Close(entry);
            }
            else
            {
                journal.Write(entry);
            }
        }
    }
}
