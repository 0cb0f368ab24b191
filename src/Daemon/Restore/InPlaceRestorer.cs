using Backupd.Daemon.Cli;

namespace Backupd.Daemon.Restore;

/// <summary>What an in-place restore did with each file: the restored path and where the replaced image was kept.</summary>
public sealed record InPlaceFile(string Path, string? KeptAside);

/// <summary>
/// Restores a shut-off domain's images where they were backed up from. Safe order: every file is
/// first restored (and digest-verified by the repository) to a staging name in its own directory;
/// only when all are staged are the current images renamed aside and the staged ones renamed into
/// place; then every restored chain must open with `qemu-img check`. Any failure before that point
/// puts the original images back. The kept-aside images are deleted only after the check passed,
/// unless the caller keeps them. The caller checks that the domain is shut off.
/// </summary>
public sealed class InPlaceRestorer(IRestoreSource source)
{
    public async Task<IReadOnlyList<InPlaceFile>> RestoreAsync(string pointId, IReadOnlyList<PlannedDisk> plan, bool keepOld, IProgress<long>? progress, CancellationToken ct)
    {
        var stamp = DateTime.UtcNow.ToString("yyyyMMddTHHmmssZ");
        var files = plan.SelectMany(d => d.Chain).ToList();
        foreach (var f in files)
        {
            if (!Path.IsPathFullyQualified(f.SourcePath) || Path.GetFullPath(f.SourcePath) != f.SourcePath)
                throw new RestoreException(ExitCodes.UsageOrConfig, $"{f.FileKey}: recorded source path '{f.SourcePath}' is not a normalised absolute path; restore with --to instead");
            RestoreDirectory.RefuseSymlinks(Path.GetDirectoryName(f.SourcePath)!);
            if (new FileInfo(f.SourcePath).LinkTarget is { } link)
                throw new RestoreException(ExitCodes.UsageOrConfig, $"{f.SourcePath} is a symbolic link (to {link}); restore with --to instead");
            if (!Directory.Exists(Path.GetDirectoryName(f.SourcePath)))
                throw new RestoreException(ExitCodes.NotFound, $"{Path.GetDirectoryName(f.SourcePath)}: the directory of {f.FileKey} no longer exists");
        }

        // 1. Stage every file beside its original (same file system, so the swap is a rename).
        var staged = new List<(PlannedFile File, string Staging)>();
        long done = 0;
        try
        {
            foreach (var f in files)
            {
                var staging = Path.Combine(Path.GetDirectoryName(f.SourcePath)!, $".{Path.GetFileName(f.SourcePath)}.backupd-restore-{stamp}");
                staged.Add((f, staging));
                var offset = done;
                await source.RestoreFileAsync(pointId, f.FileKey, staging, progress is null ? null : new Offset(progress, offset), ct);
                done += new FileInfo(staging).Length;
                if (File.Exists(f.SourcePath) && !OperatingSystem.IsWindows())
                    File.SetUnixFileMode(staging, File.GetUnixFileMode(f.SourcePath));
            }
        }
        catch
        {
            foreach (var (_, staging) in staged) TryDelete(staging);
            throw;
        }

        // 2. Swap: current image aside, staged image into place. 3. Check the restored chains.
        var swapped = new List<InPlaceFile>();
        try
        {
            foreach (var (f, staging) in staged)
            {
                string? aside = null;
                if (File.Exists(f.SourcePath))
                {
                    aside = $"{f.SourcePath}.before-restore-{stamp}";
                    File.Move(f.SourcePath, aside);
                }
                swapped.Add(new InPlaceFile(f.SourcePath, aside));
                File.Move(staging, f.SourcePath);
            }
            foreach (var disk in plan.Where(d => d.Top.Format == "qcow2"))
                await QemuImg.RunAsync(ct, "check", "-q", "-f", "qcow2", disk.Top.SourcePath);
        }
        catch (Exception e)
        {
            Rollback(swapped, staged.Select(s => s.Staging));
            throw new RestoreException($"in-place restore of {pointId} failed and the original images were put back: {e.Message}", e);
        }

        if (!keepOld)
        {
            foreach (var f in swapped.Where(f => f.KeptAside is not null)) TryDelete(f.KeptAside!);
            return swapped.Select(f => f with { KeptAside = null }).ToList();
        }
        return swapped;
    }

    private static void Rollback(List<InPlaceFile> swapped, IEnumerable<string> staging)
    {
        foreach (var f in Enumerable.Reverse(swapped))
        {
            try
            {
                if (f.KeptAside is not null)
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
