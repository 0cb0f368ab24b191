using Backupd.Daemon.Images;
using Backupd.Daemon.Libvirt;
using Backupd.Storage.Catalog;
using Backupd.Storage.ChangedBlocks;
using Backupd.Storage.Repository;
using Backupd.Policies.Model;
using Microsoft.Extensions.Logging;

namespace Backupd.Daemon.Workflow;

/// <summary>
/// How one selected disk is read this run, decided before the snapshot. <see cref="LastGood"/> and <see cref="BasedOnVersionId"/>
/// are set only when every rule of docs/workflow.md ("Changed-block tracking") holds; otherwise <see cref="FullReadReason"/> says why not.
/// <see cref="SafetyNet"/>: read everything and count blocks the bitmap called clean that changed (--full, full-every).
/// </summary>
public sealed record DiskReadChoice(string Target, bool Bitmap, string? LastGood, string? BasedOnVersionId, bool SafetyNet, string? FullReadReason, int SinceFull)
{
    public bool CanUseBitmap => LastGood is not null && BasedOnVersionId is not null;

    /// <summary>The last good checkpoint's bitmap covers every write to this disk since the previous point (so it may be carried over).</summary>
    public bool TrackedByLastGood { get; init; }

    /// <summary>full-every in days: when the disk was last read in full (from the previous point's record), and the decision's "now".</summary>
    public DateTimeOffset? LastFullRead { get; init; }
    public DateTimeOffset DecidedAt { get; init; }
}

/// <summary>
/// The run's checkpoints. <see cref="NewName"/>: created before the snapshot (null: none could be, or the domain is shut off).
/// <see cref="Keep"/>: the checkpoint whose bitmap records every write since this run's point, kept by the rotation
/// (NEW, or the previous one carried over when no NEW exists).
/// </summary>
public sealed record CheckpointChoice(string? NewName, string? LastGood, IReadOnlyDictionary<string, DiskReadChoice> Disks, string? NotCreatedReason)
{
    public string? Keep => NewName ?? (Disks.Values.Any(d => d.TrackedByLastGood) ? LastGood : null);
}

/// <summary>
/// What the workflow asks of changed-block tracking for one run: a forced safety-net read, and the policy's period (default every
/// 7th backup of a disk; docs/policies.md, full-every). <see cref="Clock"/>: the "now" the days form of the period is measured at.
/// </summary>
public sealed record ReadRequest(bool Full = false, FullReadPeriod? FullEvery = null)
{
    public FullReadPeriod Period => FullEvery ?? FullReadPeriod.Default;

    public TimeProvider Clock { get; init; } = TimeProvider.System;
}

/// <summary>
/// The checkpoint steps of a run (docs/workflow.md, "Changed-block tracking"): decide, create NEW before the snapshot, and after the run
/// either rotate (delete our older checkpoints once the point is durable and every disk is on its base) or discard NEW.
/// Nothing here fails a backup: a checkpoint that cannot be made or read means a full read, with the reason recorded.
/// </summary>
public sealed class CheckpointSteps(IHypervisor hypervisor, ILogger logger)
{
    public const string NamePrefix = "backupd-";

    public static string NameFor(string runId) => NamePrefix + runId;

    public static bool IsOurs(string name) => name.StartsWith(NamePrefix, StringComparison.Ordinal);

    /// <summary>Null when the disk's top image can carry a persistent bitmap; else why not (it is then listed checkpoint='no').</summary>
    public static string? WhyNoBitmap(DomainDisk disk, ChainImage top)
    {
        if (disk.Type != "file") return $"{disk.Type} disk: changed-block tracking needs a qcow2 file";
        if (top.Format != "qcow2") return $"{top.Format} image: only qcow2 v3 images can carry a dirty bitmap";
        if (disk.Encrypted) return "encrypted (LUKS) image: changed-block tracking is not used for it";
        if (disk.ReadOnly) return "read-only disk";
        int? version;
        try { version = QemuImg.Qcow2Version(top.Path); }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException) { return $"cannot read the qcow2 header: {e.Message}"; }
        return version == 3 ? null : $"qcow2 v{version?.ToString(System.Globalization.CultureInfo.InvariantCulture) ?? "?"} image (compat 0.10): cannot carry a dirty bitmap";
    }

    /// <summary>
    /// Decides per disk. <paramref name="previous"/>: the group's newest point (read under the writer lock); its "changed-blocks" record
    /// names the checkpoint whose bitmap covers every write since its files were read. Trusted only when that checkpoint still exists
    /// and tracks the disk, and the disk's depth-0 file and chain length are the same.
    /// </summary>
    public CheckpointChoice Decide(string uuid, string runId, bool live, IReadOnlyList<(DomainDisk Disk, IReadOnlyList<ChainImage> Chain)> selected,
        RestorePointInfo? previous, ReadRequest request)
    {
        var record = previous is null ? null : ChangedBlockMetadata.Of(previous.Metadata);
        IReadOnlyList<CheckpointInfo> existing;
        string? listProblem = null;
        try { existing = hypervisor.ListCheckpoints(uuid); }
        catch (Exception e) when (e is LibvirtException or NotSupportedException or FormatException)
        {
            existing = [];
            listProblem = $"cannot list the domain's checkpoints: {(e is LibvirtException l ? l.LibvirtMessage : e.Message)}";
        }
        var lastGood = record?.Checkpoint is { } name ? existing.FirstOrDefault(c => c.Name == name) : null;
        var now = request.Clock.GetUtcNow();
        var disks = new Dictionary<string, DiskReadChoice>();
        foreach (var (disk, chain) in selected)
        {
            var noBitmap = WhyNoBitmap(disk, chain[0]);
            var before = record?.Disk(disk.Target);
            // Why the last good checkpoint's bitmap does not describe this disk's changes since the previous point (null: it does).
            var untracked = noBitmap
                ?? listProblem
                ?? (record is null ? "no earlier restore point with a checkpoint" : null)
                ?? (record!.Checkpoint is null ? "the previous restore point has no checkpoint" : null)
                ?? (lastGood is null ? $"checkpoint {record.Checkpoint} of the previous point no longer exists" : null)
                ?? (!lastGood!.BitmapDisks.Contains(disk.Target) || before is not { Bitmap: true } ? $"checkpoint {lastGood.Name} does not track {disk.Target}" : null)
                ?? (before!.BasePath != chain[0].Path ? $"the disk's image changed since the previous point (was {before.BasePath})" : null)
                ?? (before.CleanButChanged > 0 ? $"the previous safety-net read found {before.CleanButChanged} block(s) the bitmap had missed" : null)
                ?? (before.ChainLength != chain.Count ? $"the disk's backing chain changed since the previous point ({before.ChainLength} -> {chain.Count} files)" : null);
            var version = previous?.Files.FirstOrDefault(f => f.FileKey == $"{disk.Target}.0");
            var reason = untracked
                ?? (version is null ? $"the previous point has no {disk.Target}.0" : null)
                ?? (!live ? "the domain is shut off: its files are read in full (the bitmap keeps recording for the next live backup)" : null);
            var sinceFull = before?.SinceFull ?? 0;
            var safetyNet = request.Full || request.Period.IsDue(sinceFull, before?.LastFullRead, now);
            disks[disk.Target] = new DiskReadChoice(disk.Target, noBitmap is null, reason is null ? lastGood!.Name : null, reason is null ? version!.VersionId : null,
                safetyNet, reason, sinceFull) { TrackedByLastGood = untracked is null, LastFullRead = before?.LastFullRead, DecidedAt = now };
        }
        // A shut-off domain gets no new checkpoint (libvirt refuses one): its bitmaps keep recording, so the old one is carried over.
        var anyBitmap = disks.Values.Any(d => d.Bitmap);
        return new CheckpointChoice(live && anyBitmap ? NameFor(runId) : null, lastGood?.Name, disks,
            !live ? "the domain is shut off" : anyBitmap ? null : "no disk can carry a dirty bitmap");
    }

    /// <summary>
    /// Creates NEW before the snapshot, every disk of the domain listed (libvirt's default for an unlisted disk is a bitmap). Journaled
    /// first, so a crash right after leaves a name recovery can delete. A refusal is logged and the run goes on without NEW.
    /// </summary>
    public CheckpointChoice Create(CheckpointChoice choice, string uuid, string domainName, IReadOnlyList<DomainDisk> allDisks, JournalEntry entry, RunJournal journal)
    {
        if (choice.NewName is not { } name) return choice;
        entry.CheckpointNew = name;
        journal.Write(entry);
        var xml = CheckpointXml.Build(name, allDisks.Select(d => (d.Target, choice.Disks.TryGetValue(d.Target, out var c) && c.Bitmap)));
        try
        {
            hypervisor.CreateCheckpoint(uuid, xml);
            return choice;
        }
        catch (Exception e) when (e is LibvirtException or NotSupportedException)
        {
            var why = e is LibvirtException l ? l.LibvirtMessage : e.Message;
            logger.CheckpointNotCreated(domainName, name, why);
            entry.CheckpointNew = null;
            journal.Write(entry);
            return choice with { NewName = null, NotCreatedReason = $"checkpoint {name} could not be created: {why}" };
        }
    }

    /// <summary>
    /// After the point is durable and every disk is on its base: deletes our checkpoints other than <paramref name="keep"/> (the
    /// previous good one, and any a crashed run left). Never someone else's. Problems are logged, never fail the run.
    /// </summary>
    public void Rotate(string uuid, string domainName, string? keep)
    {
        if (keep is null) return;
        IReadOnlyList<CheckpointInfo> all;
        try { all = hypervisor.ListCheckpoints(uuid); }
        catch (Exception e) when (e is LibvirtException or NotSupportedException or FormatException)
        {
            logger.CheckpointCleanupFailed(domainName, "(list)", e.Message);
            return;
        }
        foreach (var old in all.Where(c => IsOurs(c.Name) && c.Name != keep)) Delete(uuid, domainName, old.Name);
    }

    /// <summary>
    /// Deletes one checkpoint; when libvirt cannot find its bitmap in the images (a QEMU crash, a restore) or the domain is shut off,
    /// only its metadata (the bitmap, if any, stays in the image and is never trusted again: names are unique).
    /// </summary>
    public bool Delete(string uuid, string domainName, string name)
    {
        try
        {
            if (hypervisor.DeleteCheckpoint(uuid, name, metadataOnly: false)) logger.CheckpointDeleted(domainName, name, "");
            return true;
        }
        catch (LibvirtException first)
        {
            try
            {
                if (hypervisor.DeleteCheckpoint(uuid, name, metadataOnly: true)) logger.CheckpointDeleted(domainName, name, $" (metadata only: {first.LibvirtMessage})");
                return true;
            }
            catch (LibvirtException e)
            {
                logger.CheckpointCleanupFailed(domainName, name, e.LibvirtMessage);
                return false;
            }
        }
        catch (NotSupportedException e)
        {
            logger.CheckpointCleanupFailed(domainName, name, e.Message);
            return false;
        }
    }

    /// <summary>The point's "changed-blocks" record: what the next backup may trust, and how each disk was read now.</summary>
    public static ChangedBlockMetadata Record(CheckpointChoice choice, IReadOnlyList<(DomainDisk Disk, IReadOnlyList<ChainImage> Chain)> selected,
        IReadOnlyDictionary<string, CopiedFile> depthZero)
    {
        var keep = choice.Keep;
        var disks = selected.Select(s =>
        {
            var c = choice.Disks[s.Disk.Target];
            var file = depthZero.GetValueOrDefault(s.Disk.Target);
            var mode = file?.ReadMode ?? ReadModes.Full;
            // Carried over (no NEW): the disk stays trusted only if the kept checkpoint already tracked it.
            var tracked = keep is not null && (choice.NewName is not null ? c.Bitmap : c.TrackedByLastGood);
            return new ChangedBlockDisk(s.Disk.Target, s.Chain[0].Path, s.Chain.Count, tracked, mode, file?.FullReadReason ?? c.FullReadReason,
                file?.BytesRead ?? 0, file?.CleanButChanged ?? 0, mode == ReadModes.Incremental ? c.SinceFull + 1 : 0)
            {
                LastFullRead = mode == ReadModes.Incremental ? c.LastFullRead : c.DecidedAt,
            };
        }).ToList();
        return new ChangedBlockMetadata(keep, disks);
    }
}
