using System.Diagnostics;
using System.Text.Json;
using Backupd.Daemon.Chains;
using Backupd.Daemon.Images;
using Backupd.Daemon.Libvirt;
using Backupd.Daemon.Restore;
using Backupd.Daemon.Workflow;
using Backupd.Storage.Catalog;
using Backupd.Storage.Repository;
using Microsoft.Extensions.Logging;

namespace Backupd.Daemon.Drills;

/// <summary>What an instant restore did: when the new domain started, and when it stopped depending on the repository.</summary>
public sealed record InstantOutcome(string NewDomainName, Guid NewDomainUuid, string PointId, string Backing, TimeSpan StartedAfter, TimeSpan? StandaloneAfter,
    IReadOnlyList<RestoredDiskResult> Disks, IReadOnlyList<XmlChange> Changes);

/// <summary>
/// `restore --as-domain NEW --instant` (issue 11, the seed's blockpull): NEW is defined and started at once on qcow2
/// overlays whose backing files are the point's images (<see cref="PointBacking"/>: the mirror itself when it can be),
/// then virDomainBlockPull streams the backing data into each overlay while the guest runs. Until every disk is
/// standalone the point's group stays read-locked and the source domain's run lock held; the operation is journaled
/// first, so `recover` resumes a pull whose process died (<see cref="ResumeAsync"/>).
/// </summary>
public sealed class InstantRestore(IHypervisor hypervisor, DrillJournal journal, ILogger logger)
{
    public async Task<InstantOutcome> RunAsync(BackupRepository repository, Guid sourceUuid, string sourceName, string pointId, string? savedXml, IReadOnlyList<PlannedDisk> plan,
        string newName, string directory, bool trustSavedXml, long? bandwidth, Action<ChainProgress>? progress, Action<DrillJournalEntry>? journaled, CancellationToken ct)
    {
        NewDomainXml.ValidateName(newName);
        if (savedXml is null) throw new RestoreException(FailureKind.NotFound, $"restore point {pointId} has no saved domain XML; restore its files with --to instead");
        if (hypervisor.FindDomain(newName) is { } existing) throw new RestoreException(FailureKind.Usage, $"a domain named '{newName}' already exists ({existing.Uuid}); choose another name");
        if (Path.Exists(directory)) throw new RestoreException(FailureKind.Usage, $"{directory} already exists; an instant restore writes its overlays into a new directory (choose one with --images-dir)");
        var emulator = trustSavedXml ? null : DomainRestore.HostEmulator(hypervisor, savedXml);
        var clock = Stopwatch.StartNew();
        var entry = new DrillJournalEntry
        {
            Id = DrillRunner.NewId(), Kind = DrillJournalEntry.Instant, SourceDomain = sourceName, SourceUuid = sourceUuid, PointId = pointId, Repository = repository.Directory,
            DomainName = newName, Directory = directory, Pid = ProcessIdentity.Current.Pid, ProcessStart = ProcessIdentity.Current.StartToken,
            Overlays = plan.ToDictionary(d => d.Disk, d => Path.Combine(directory, $"{d.Disk}.qcow2")),
        };
        journal.Write(entry);
        journaled?.Invoke(entry);
        Workflow.BackupWorkflow.CreateOverlayDirectory(directory);
        PointBacking backing;
        NewDomainDefinition definition;
        string uuid;
        try
        {
            backing = await PointBacking.PrepareAsync(repository, pointId, plan, directory, $"the instant restore of {newName}", allowMirror: true, null, ct, disk => $"{disk}.qcow2", pinId: entry.Id);
            definition = NewDomainXml.Rewrite(savedXml, newName, backing.Disks.ToDictionary(d => d.Disk, d => new RestoredDisk(d.Overlay, "qcow2")), new SavedXmlPolicy(directory, emulator, trustSavedXml));
            hypervisor.DefineXml(DrillXml.OwnCharacterFiles(definition.Xml, directory));
            uuid = definition.Uuid.ToString();
            hypervisor.Start(uuid);
        }
        catch
        {
            // Nothing runs yet: leave nothing behind.
            if (hypervisor.FindDomain(newName) is { } made) { if (made.IsActive) hypervisor.Destroy(made.Uuid); hypervisor.Undefine(made.Uuid); }
            Directory.Delete(directory, recursive: true);
            repository.Unpin(pointId, entry.Id);
            journal.Remove(entry);
            throw;
        }
        var started = clock.Elapsed;
        DrillsLog.InstantStarted(logger, sourceName, pointId, newName, started.TotalSeconds);
        using (backing)
        {
            foreach (var d in backing.Disks) hypervisor.StartPull(uuid, d.Disk, null, bandwidth);
            await FinishPullsAsync(uuid, newName, backing.Disks.Select(d => d.Disk).ToList(), progress, ct);
        }
        await Standalone(entry, repository, ct);
        return new InstantOutcome(newName, definition.Uuid, pointId, backing.Kind, started, clock.Elapsed,
            backing.Disks.Select(d => new RestoredDiskResult(d.Disk, d.Overlay, "qcow2", [d.Overlay])).ToList(), definition.Changes);
    }

    /// <summary>Waits for every disk's pull to end; a pull that failed or was cancelled throws (the journal stays: `recover` resumes it).</summary>
    private async Task FinishPullsAsync(string uuid, string name, IReadOnlyList<string> disks, Action<ChainProgress>? progress, CancellationToken ct)
    {
        foreach (var disk in disks)
        {
            var outcome = await BlockJobRunner.WaitAsync(hypervisor, uuid, disk, BlockJobGoal.Gone, $"pull {disk}", progress, ct);
            if (outcome != BlockJobOutcome.Gone)
            {
                var reason = $"the block pull of {disk} ended {outcome.ToString().ToLowerInvariant()}; {name} still depends on the repository: run `backupd recover` to resume it";
                DrillsLog.InstantFailed(logger, name, reason);
                throw new DrillException(reason);
            }
            DrillsLog.InstantDiskDone(logger, name, disk);
        }
    }

    /// <summary>Checks that no disk has a backing file any more, then drops the reconstructed point (if any), the point's pin and the journal entry.</summary>
    private async Task Standalone(DrillJournalEntry entry, BackupRepository repository, CancellationToken ct)
    {
        foreach (var (disk, overlay) in entry.Overlays)
        {
            using var chain = JsonDocument.Parse(await QemuImg.BackingChainJsonAsync(overlay, ct));
            if (chain.RootElement.GetArrayLength() != 1)
                throw new DrillException($"{entry.DomainName} disk {disk}: {overlay} still has a backing file after its pull");
        }
        var point = Path.Combine(entry.Directory, "point");
        if (Directory.Exists(point)) Directory.Delete(point, recursive: true);
        repository.Unpin(entry.PointId, entry.Id);
        journal.Remove(entry);
    }

    /// <summary>
    /// `recover` of an instant restore whose process died: with the group leased again, every disk that still has a
    /// backing file gets its pull (a job still running is waited for; none is started again, unlimited), then the
    /// entry is closed. A domain that no longer runs cannot be pulled: it is reported, nothing is deleted.
    /// </summary>
    public async Task<RecoveryAction> ResumeAsync(DrillJournalEntry entry, CancellationToken ct)
    {
        var found = hypervisor.FindDomain(entry.DomainName);
        if (found is null)
        {
            // Undefined by the operator: nothing uses the point's images any more, so the pin and the entry go.
            using var gone = BackupRepository.Open(entry.Repository);
            gone.Unpin(entry.PointId, entry.Id);
            journal.Remove(entry);
            return new RecoveryAction(entry.DomainName, "-", entry.Directory, "release the point of an instant restore whose domain no longer exists", true, null);
        }
        if (found is not { IsActive: true } domain)
            return new RecoveryAction(entry.DomainName, "-", entry.Directory, "resume the instant restore's block pull", false,
                $"{entry.DomainName} is not running: start it (its disks still use the repository's images as backing files) and run `backupd recover` again");
        DrillsLog.InstantResumed(logger, entry.DomainName);
        using var repository = BackupRepository.Open(entry.Repository);
        using var lease = repository.LeasePoint(entry.PointId, $"the instant restore of {entry.DomainName} (recover)", entry.Id);
        var pending = new List<string>();
        foreach (var (disk, overlay) in entry.Overlays)
        {
            using var chain = JsonDocument.Parse(await QemuImg.BackingChainJsonAsync(overlay, ct));
            if (chain.RootElement.GetArrayLength() == 1) continue;
            // A pull still running keeps going at full speed now (the limit was for the guest's sake while it started).
            if (hypervisor.GetBlockJob(domain.Uuid, disk) is null) hypervisor.StartPull(domain.Uuid, disk, null, null);
            else hypervisor.SetBlockJobSpeed(domain.Uuid, disk, 0);
            pending.Add(disk);
        }
        await FinishPullsAsync(domain.Uuid, entry.DomainName, pending, null, ct);
        await Standalone(entry, repository, ct);
        return new RecoveryAction(entry.DomainName, string.Join(",", entry.Overlays.Keys), entry.Directory, "resume the instant restore's block pull", true, null);
    }
}
