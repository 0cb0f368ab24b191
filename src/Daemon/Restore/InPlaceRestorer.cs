using Backupd.Daemon.Cli;
using Backupd.Daemon.Images;
using Backupd.Storage.Repository;

namespace Backupd.Daemon.Restore;

/// <summary>What an in-place restore did with each file: the restored path and where the replaced image was kept.</summary>
public sealed record InPlaceFile(string Path, string? KeptAside)
{
    /// <summary>The dirty bitmaps the restored file carried from the backed-up source, removed once it was in place.</summary>
    public IReadOnlyList<string> RemovedBitmaps { get; init; } = [];
}

/// <summary>
/// Restores a shut-off domain's images where they were backed up from. Safe order: every file is
/// first restored (and digest-verified by the repository) to a staging name in its own directory;
/// only when all are staged are the current images renamed aside and the staged ones renamed into
/// place; then every restored qcow2 file loses its dirty bitmaps (they described the source's writes since some checkpoint, not
/// this file: the caller drops the domain's checkpoints) and every restored chain must open with `qemu-img check`. Any failure before that point
/// puts the original images back. The kept-aside images are deleted only after the check passed,
/// unless the caller keeps them. The caller checks that the domain is shut off.
/// A block device (an LVM logical volume, a LUN) is not renamed: its image is staged and verified in
/// <paramref name="deviceStaging"/>, the device must have exactly the point's size, then the image is
/// written onto it, fsynced, and the device re-read and checked against the point's digest. With keepOld
/// the device's content is first saved beside the staged image (and written back if anything fails).
/// </summary>
public sealed class InPlaceRestorer(IRestoreSource source, string? deviceStaging = null)
{
    public async Task<IReadOnlyList<InPlaceFile>> RestoreAsync(string pointId, IReadOnlyList<PlannedDisk> plan, bool keepOld, IProgress<long>? progress, CancellationToken ct)
    {
        var stamp = DateTime.UtcNow.ToString("yyyyMMddTHHmmssZ");
        var files = plan.SelectMany(d => d.Chain).ToList();
        var devices = new HashSet<string>(StringComparer.Ordinal);
        foreach (var f in files)
        {
            if (!Path.IsPathFullyQualified(f.SourcePath) || Path.GetFullPath(f.SourcePath) != f.SourcePath)
                throw new RestoreException(FailureKind.Usage, $"{f.FileKey}: recorded source path '{f.SourcePath}' is not a normalised absolute path; restore with --to instead");
            if (CheckDevice(f, keepOld))
            {
                devices.Add(f.SourcePath);
                continue;
            }
            RestoreDirectory.RefuseSymlinks(Path.GetDirectoryName(f.SourcePath)!);
            if (new FileInfo(f.SourcePath).LinkTarget is { } link)
                throw new RestoreException(FailureKind.Usage, $"{f.SourcePath} is a symbolic link (to {link}); restore with --to instead");
            if (!Directory.Exists(Path.GetDirectoryName(f.SourcePath)))
                throw new RestoreException(FailureKind.NotFound, $"{Path.GetDirectoryName(f.SourcePath)}: the directory of {f.FileKey} no longer exists");
        }

        // 1. Stage every file beside its original (same file system, so the swap is a rename); a device's in the staging directory.
        var staged = new List<(PlannedFile File, string Staging)>();
        long done = 0;
        try
        {
            foreach (var f in files)
            {
                var staging = devices.Contains(f.SourcePath)
                    ? Path.Combine(deviceStaging!, $"{f.FileKey}.backupd-restore-{stamp}")
                    : Path.Combine(Path.GetDirectoryName(f.SourcePath)!, $".{Path.GetFileName(f.SourcePath)}.backupd-restore-{stamp}");
                staged.Add((f, staging));
                var offset = done;
                await source.RestoreFileAsync(pointId, f.FileKey, staging, progress is null ? null : new Offset(progress, offset), ct);
                done += new FileInfo(staging).Length;
                if (!devices.Contains(f.SourcePath) && File.Exists(f.SourcePath) && !OperatingSystem.IsWindows())
                    File.SetUnixFileMode(staging, File.GetUnixFileMode(f.SourcePath));
            }
        }
        catch
        {
            foreach (var (_, staging) in staged) TryDelete(staging);
            throw;
        }

        // 2. Swap: current image aside, staged image into place (onto a device: written and verified). 3. Check the restored chains.
        var swapped = new List<InPlaceFile>();
        try
        {
            foreach (var (f, staging) in staged)
            {
                if (devices.Contains(f.SourcePath))
                {
                    swapped.Add(await WriteOntoDeviceAsync(pointId, f, staging, keepOld ? $"{staging[..staging.LastIndexOf(".backupd-restore-", StringComparison.Ordinal)]}.before-restore-{stamp}" : null, ct));
                    continue;
                }
                string? aside = null;
                if (File.Exists(f.SourcePath))
                {
                    aside = $"{f.SourcePath}.before-restore-{stamp}";
                    File.Move(f.SourcePath, aside);
                }
                swapped.Add(new InPlaceFile(f.SourcePath, aside));
                File.Move(staging, f.SourcePath);
            }
            // After the swap (a device's image is verified against the point's digest as written): the bitmaps are not part of what was checked.
            for (var i = 0; i < swapped.Count; i++)
                swapped[i] = swapped[i] with { RemovedBitmaps = await QemuImg.RemoveBitmapsAsync(swapped[i].Path, staged[i].File.Format, ct) };
            foreach (var disk in plan.Where(d => d.Top.Format == "qcow2"))
                await QemuImg.RunAsync(ct, "check", "-q", "-f", "qcow2", disk.Top.SourcePath);
        }
        catch (Exception e)
        {
            Rollback(swapped, staged.Select(s => s.Staging), devices);
            var overwritten = swapped.Where(f => devices.Contains(f.Path) && f.KeptAside is null).Select(f => f.Path).ToList();
            throw new RestoreException(overwritten.Count == 0
                ? $"in-place restore of {pointId} failed and the original images were put back: {e.Message}"
                : $"in-place restore of {pointId} failed: {e.Message}; the original images were put back, except block device(s) {string.Join(", ", overwritten)}, which hold the restored image (verified) as nothing was kept without --keep-old", e);
        }

        if (!keepOld)
        {
            foreach (var f in swapped.Where(f => f.KeptAside is not null)) TryDelete(f.KeptAside!);
            return swapped.Select(f => f with { KeptAside = null }).ToList();
        }
        return swapped;
    }

    /// <summary>
    /// Refuses what cannot be restored in place on a device before anything is written; true when
    /// <paramref name="f"/> is (or, under /dev, was) a block device. /dev/VG/LV is a symbolic link to
    /// /dev/dm-N: for a device that is the normal layout, so links are followed here.
    /// </summary>
    private bool CheckDevice(PlannedFile f, bool keepOld)
    {
        var underDev = f.SourcePath.StartsWith("/dev/", StringComparison.Ordinal);
        if (!File.Exists(f.SourcePath) || SourceLength.KindOf(f.SourcePath) != SourceKind.BlockDevice)
        {
            if (underDev)
                throw new RestoreException(FailureKind.NotFound, $"{f.FileKey} was backed up from block device {f.SourcePath}, which is not a block device now; create it with exactly {f.FileSize} bytes (e.g. lvcreate -L {f.FileSize}b) or restore with --to");
            return false;
        }
        if (deviceStaging is null)
            throw new RestoreException(FailureKind.Usage, $"{f.SourcePath} is a block device: an in-place restore needs a staging directory for its image");
        if (!Directory.Exists(deviceStaging))
            throw new RestoreException(FailureKind.NotFound, $"staging directory {deviceStaging} for block device {f.SourcePath} does not exist");
        var size = SourceLength.Of(f.SourcePath);
        if (size != f.FileSize)
            throw new RestoreException(FailureKind.Usage, $"block device {f.SourcePath} has {size} bytes but {f.FileKey} of the restore point has {f.FileSize}; make it exactly {f.FileSize} bytes (e.g. lvresize -L {f.FileSize}b) or restore with --to");
        var free = new DriveInfo(deviceStaging).AvailableFreeSpace;
        var needed = keepOld ? 2 * f.FileSize : f.FileSize; // at most: the staged image is sparse
        if (free < needed)
            throw new RestoreException(FailureKind.Usage, $"staging directory {deviceStaging} has {free} bytes free, {needed} may be needed to stage {f.FileKey} for {f.SourcePath}; choose another with --staging-dir");
        return true;
    }

    /// <summary>The staged (digest-verified) image onto the device, then the device re-read against the digest.</summary>
    private async Task<InPlaceFile> WriteOntoDeviceAsync(string pointId, PlannedFile f, string staging, string? saveOld, CancellationToken ct)
    {
        if (saveOld is not null)
        {
            await CopyDeviceToFileAsync(f.SourcePath, saveOld, ct);
        }
        try
        {
            await DeviceCopy.CopyAsync(staging, f.SourcePath, ct);
            if (!await source.MatchesAsync(pointId, f.FileKey, f.SourcePath, ct))
                throw new RestoreException($"{f.SourcePath} does not read back as {f.FileKey} of {pointId} after writing it (digest differs): the device lost writes");
        }
        catch when (saveOld is not null)
        {
            await DeviceCopy.CopyAsync(saveOld, f.SourcePath, CancellationToken.None); // the old content back before reporting
            throw;
        }
        TryDelete(staging);
        return new InPlaceFile(f.SourcePath, saveOld);
    }

    private static Task CopyDeviceToFileAsync(string device, string file, CancellationToken ct) => Task.Run(async () =>
    {
        await using var input = new FileStream(device, FileMode.Open, FileAccess.Read, FileShare.ReadWrite, 1 << 20);
        await using var output = new FileStream(file, FileMode.CreateNew, FileAccess.Write, FileShare.None, 1 << 20);
        await input.CopyToAsync(output, ct);
        output.Flush(flushToDisk: true);
    }, ct);

    private static void Rollback(List<InPlaceFile> swapped, IEnumerable<string> staging, HashSet<string> devices)
    {
        foreach (var f in Enumerable.Reverse(swapped))
        {
            try
            {
                if (devices.Contains(f.Path))
                {
                    if (f.KeptAside is not null) DeviceCopy.CopyAsync(f.KeptAside, f.Path, CancellationToken.None).GetAwaiter().GetResult();
                }
                else if (f.KeptAside is not null)
                    File.Move(f.KeptAside, f.Path, overwrite: true);
                else
                    File.Delete(f.Path);
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
                // Leave the aside copy where it is; the error message names the run's point and the admin finds *.before-restore-*.
            }
        }
        foreach (var s in staging) TryDelete(s);
    }

    private static void TryDelete(string path)
    {
        try { File.Delete(path); }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException) { /* best effort */ }
    }

    private sealed class Offset(IProgress<long> outer, long offset) : IProgress<long>
    {
        public void Report(long value) => outer.Report(offset + value);
    }
}
