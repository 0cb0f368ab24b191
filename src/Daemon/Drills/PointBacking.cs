using Backupd.Daemon.Images;
using Backupd.Daemon.Restore;
using Backupd.Storage.Repository;

namespace Backupd.Daemon.Drills;

/// <summary>One disk of a point as a drill or instant restore runs it: a new qcow2 overlay on a read-only image of the point.</summary>
public sealed record OverlayDisk(string Disk, string Overlay, string Backing, string BackingFormat, bool FromMirror);

/// <summary>
/// Makes qcow2 overlays over a restore point's images without copying them. The point's group is leased (its lock
/// held shared: no backup, prune or forget changes a mirror meanwhile). A disk of one file whose version is the
/// mirror, in a directory QEMU's user can reach, is backed by the mirror itself; any other disk (an older point, a
/// chain, a repository QEMU cannot read) is first reconstructed into DIRECTORY/point/ and backed by that. With a pin id
/// the point is also pinned in the repository (survives a kill: see <see cref="BackupRepository.LeasePoint"/>).
/// </summary>
public sealed class PointBacking : IDisposable
{
    private readonly PointLease lease;

    private PointBacking(PointLease lease, IReadOnlyList<OverlayDisk> disks)
    {
        this.lease = lease;
        Disks = disks;
    }

    public IReadOnlyList<OverlayDisk> Disks { get; }

    /// <summary>"mirror" when every disk is backed by the repository's mirror, "reconstructed" when none, else "mixed".</summary>
    public string Kind => Disks.All(d => d.FromMirror) ? "mirror" : Disks.Any(d => d.FromMirror) ? "mixed" : "reconstructed";

    public static async Task<PointBacking> PrepareAsync(BackupRepository repository, string pointId, IReadOnlyList<PlannedDisk> plan, string directory, string purpose,
        bool allowMirror, IProgress<long>? progress, CancellationToken ct, Func<string, string>? overlayName = null, string? pinId = null)
    {
        overlayName ??= disk => $"{disk}.overlay.qcow2";
        var lease = repository.LeasePoint(pointId, purpose, pinId);
        try
        {
            var disks = new List<OverlayDisk>();
            var toRebuild = new List<PlannedDisk>();
            foreach (var disk in plan)
            {
                if (allowMirror && disk.Chain.Count == 1 && lease.Mirrors.GetValueOrDefault(disk.Top.FileKey) is { } mirror && QemuCanReach(mirror))
                    disks.Add(new OverlayDisk(disk.Disk, Path.Combine(directory, overlayName(disk.Disk)), mirror, disk.Top.Format, true));
                else
                    toRebuild.Add(disk);
            }
            if (toRebuild.Count > 0)
            {
                var pointDir = Path.Combine(directory, "point");
                Directory.CreateDirectory(pointDir);
                var target = RestoreDirectory.Prepare(pointDir, DiskRestorer.OutputNames(toRebuild, flatten: false), create: false);
                // The restorer takes the group's lock shared itself: a second shared lock of ours is fine.
                var restored = await new DiskRestorer(new RepositoryRestoreSource(repository)).RestoreToDirectoryAsync(pointId, toRebuild, target, false, progress, ct);
                disks.AddRange(restored.Select(r => new OverlayDisk(r.Disk, Path.Combine(directory, overlayName(r.Disk)), r.ImagePath, r.Format, false)));
            }
            foreach (var d in disks)
                await QemuImg.CreateOverlayAsync(d.Overlay, d.Backing, d.BackingFormat, ct);
            return new PointBacking(lease, disks.OrderBy(d => d.Disk, StringComparer.Ordinal).ToList());
        }
        catch
        {
            lease.Dispose();
            throw;
        }
    }

    /// <summary>
    /// QEMU runs as an unprivileged user: libvirt gives it the image file itself (dynamic ownership) but not the
    /// directories above it, so the mirror is usable only when every one of them lets others through.
    /// </summary>
    private static bool QemuCanReach(string path)
    {
        if (OperatingSystem.IsWindows()) return false;
        for (var dir = Path.GetDirectoryName(path); !string.IsNullOrEmpty(dir); dir = Path.GetDirectoryName(dir))
        {
            if ((File.GetUnixFileMode(dir) & UnixFileMode.OtherExecute) == 0) return false;
        }
        return true;
    }

    public void Dispose() => lease.Dispose();
}
