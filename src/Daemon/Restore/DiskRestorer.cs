using Backupd.Daemon.Cli;
using Backupd.Daemon.Images;

namespace Backupd.Daemon.Restore;

/// <summary>A disk as restored: the image to use (the top of the restored chain, or the flattened image) and every file written.</summary>
public sealed record RestoredDiskResult(string Disk, string ImagePath, string Format, IReadOnlyList<string> Files)
{
    /// <summary>The dirty bitmaps the restored files carried from the backed-up source and no longer do ("file: name").</summary>
    public IReadOnlyList<string> RemovedBitmaps { get; init; } = [];
}

/// <summary>
/// Writes restore-point disks into a directory. Chain files keep their chain: each restored file's
/// backing reference is rewritten (`qemu-img rebase -u`, header only) to the restored file below it,
/// so the restored chain never reads the original images. Every restored qcow2 file loses the dirty bitmaps it carried from the source
/// (they described the source's writes, not this file's). With flatten, the chain is first restored
/// into a private scratch directory inside the target and converted to one standalone image per disk.
/// On any failure every file this call created is removed again: a failed restore leaves nothing.
/// </summary>
public sealed class DiskRestorer(IRestoreSource source)
{
    /// <summary>The file names a restore will create in the target directory (for the overwrite check).</summary>
    public static IEnumerable<string> OutputNames(IReadOnlyList<PlannedDisk> plan, bool flatten) =>
        flatten ? plan.Select(d => d.Top.FileName) : plan.SelectMany(d => d.Chain.Select(f => f.FileName));

    public async Task<IReadOnlyList<RestoredDiskResult>> RestoreToDirectoryAsync(
        string pointId, IReadOnlyList<PlannedDisk> plan, RestoreDirectory target, bool flatten, IProgress<long>? progress, CancellationToken ct)
    {
        var created = new List<string>();
        string? scratch = null;
        var bytes = new ProgressTotal(progress);
        try
        {
            var results = new List<RestoredDiskResult>();
            if (flatten)
            {
                scratch = target.PathOf($".backupd-restore-{Guid.NewGuid():N}");
                Directory.CreateDirectory(scratch);
                var scratchDir = RestoreDirectory.Prepare(scratch, [], create: false);
                foreach (var disk in plan)
                {
                    var (chain, _) = await RestoreChainAsync(pointId, disk, scratchDir, created, bytes, ct);
                    var output = target.PathOf(disk.Top.FileName);
                    created.Add(output);
                    await QemuImg.ConvertAsync(chain[0], disk.Top.Format, output, disk.Top.Format, ct); // convert copies no bitmaps (no --bitmaps)
                    results.Add(new RestoredDiskResult(disk.Disk, output, disk.Top.Format, [output]));
                }
            }
            else
            {
                foreach (var disk in plan)
                {
                    var (chain, removed) = await RestoreChainAsync(pointId, disk, target, created, bytes, ct);
                    results.Add(new RestoredDiskResult(disk.Disk, chain[0], disk.Top.Format, chain) { RemovedBitmaps = removed });
                }
            }
            if (scratch is not null) DeleteQuietly(scratch, created);
            return results;
        }
        catch
        {
            foreach (var file in created) TryDelete(file);
            if (scratch is not null) TryDeleteDirectory(scratch);
            throw;
        }
    }

    /// <summary>
    /// Restores one disk's chain into <paramref name="dir"/>, removes its bitmaps, and links each file to the restored one below it.
    /// Returns paths, top first, and the bitmaps removed.
    /// </summary>
    private async Task<(IReadOnlyList<string> Paths, IReadOnlyList<string> RemovedBitmaps)> RestoreChainAsync(string pointId, PlannedDisk disk, RestoreDirectory dir, List<string> created, ProgressTotal bytes, CancellationToken ct)
    {
        var paths = new List<string>();
        var removed = new List<string>();
        foreach (var file in disk.Chain)
        {
            var path = dir.PathOf(file.FileName);
            if (Path.Exists(path))
                throw new RestoreException(FailureKind.Usage, $"refusing to overwrite {path}");
            created.Add(path);
            await source.RestoreFileAsync(pointId, file.FileKey, path, bytes.ForFile(), ct);
            bytes.FileDone();
            paths.Add(path);
            removed.AddRange((await QemuImg.RemoveBitmapsAsync(path, file.Format, ct)).Select(b => $"{path}: {b}"));
        }
        for (var i = 0; i + 1 < disk.Chain.Count; i++)
        {
            if (disk.Chain[i].Format != "qcow2")
                throw new RestoreException(FailureKind.Failed, $"{disk.Chain[i].FileKey} is {disk.Chain[i].Format} but has a file below it in the chain; only qcow2 images have backing files");
            await QemuImg.RebaseUnsafeAsync(paths[i], paths[i + 1], disk.Chain[i + 1].Format, ct);
        }
        return (paths, removed);
    }

    private static void DeleteQuietly(string scratch, List<string> created)
    {
        created.RemoveAll(p => p.StartsWith(scratch + "/", StringComparison.Ordinal));
        TryDeleteDirectory(scratch);
    }

    private static void TryDelete(string path)
    {
        try { File.Delete(path); }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException) { /* best effort: the error being reported matters more */ }
    }

    private static void TryDeleteDirectory(string path)
    {
        try { Directory.Delete(path, recursive: true); }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException) { /* best effort */ }
    }

    /// <summary>Adds per-file progress (bytes of the current file) to the bytes of files already done.</summary>
    private sealed class ProgressTotal(IProgress<long>? outer)
    {
        private readonly IProgress<long>? _outer = outer;
        private long _done;
        private long _current;

        public IProgress<long>? ForFile()
        {
            _current = 0;
            return _outer is null ? null : new Progress(this);
        }

        public void FileDone()
        {
            _done += _current;
            _current = 0;
        }

        private sealed class Progress(ProgressTotal total) : IProgress<long>
        {
            public void Report(long value)
            {
                total._current = value;
                total._outer!.Report(total._done + value);
            }
        }
    }
}
