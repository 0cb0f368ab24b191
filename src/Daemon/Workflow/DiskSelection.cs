using Backupd.Daemon.Libvirt;

namespace Backupd.Daemon.Workflow;

/// <summary>Which disks of a domain a backup covers, and why the others are skipped. Pure.</summary>
public static class DiskSelection
{
    public sealed record Result(IReadOnlyList<DomainDisk> Selected, IReadOnlyList<SkippedDisk> Skipped);

    /// <summary>Why a disk can never be snapshotted and copied, or null when it can.</summary>
    public static string? Ineligible(DomainDisk disk)
    {
        if (disk.Device != "disk") return $"{disk.Device} device (only device='disk' is backed up)";
        if (disk.Type == "network") return $"network disk ({disk.NetworkProtocol ?? "unknown protocol"}): back it up on its storage system";
        if (disk.Type == "volume") return "storage pool volume (type='volume') is not supported";
        if (disk.Type is not ("file" or "block")) return $"disk type '{disk.Type}' is not supported";
        if (disk.ReadOnly) return "read-only disk: the guest cannot change it";
        if (disk.Shareable) return "shareable disk: other domains write to it, a snapshot here would split it";
        if (disk.SourcePath is null) return "no source (empty drive)";
        return null;
    }

    /// <summary>Throws <see cref="BackupRefusedException"/> (BadRequest) for unknown or ineligible named targets, or when nothing is left.</summary>
    public static Result Select(IReadOnlyList<DomainDisk> disks, IReadOnlyList<string> include, IReadOnlyList<string> exclude)
    {
        var known = disks.Select(d => d.Target).ToHashSet(StringComparer.Ordinal);
        var unknown = include.Concat(exclude).Where(t => !known.Contains(t)).Distinct().ToList();
        if (unknown.Count > 0)
            throw new BackupRefusedException(RefusalKind.BadRequest,
                $"unknown disk target{(unknown.Count > 1 ? "s" : "")} {string.Join(", ", unknown.Select(t => $"'{t}'"))}; the domain has: {string.Join(", ", known.Order(StringComparer.Ordinal))}");

        var selected = new List<DomainDisk>();
        var skipped = new List<SkippedDisk>();
        foreach (var disk in disks)
        {
            var reason = Ineligible(disk);
            if (include.Contains(disk.Target) && reason is not null)
                throw new BackupRefusedException(RefusalKind.BadRequest, $"disk '{disk.Target}' was asked for but cannot be backed up: {reason}");
            if (reason is null && include.Count > 0 && !include.Contains(disk.Target)) reason = "not in the requested disk list";
            if (reason is null && exclude.Contains(disk.Target)) reason = "excluded by request";
            if (reason is null) selected.Add(disk);
            else skipped.Add(new SkippedDisk(disk.Target, reason));
        }
        if (selected.Count == 0)
            throw new BackupRefusedException(RefusalKind.BadRequest,
                $"nothing to back up: {string.Join("; ", skipped.Select(s => $"{s.Target}: {s.Reason}"))}");
        return new Result(selected, skipped);
    }
}
