using System.Text.RegularExpressions;
using Backupd.Daemon.Cli;
using Backupd.Storage.Catalog;

namespace Backupd.Daemon.Restore;

/// <summary>One chain file to restore: the repository key, and the file name it gets in the target directory.</summary>
public sealed record PlannedFile(string FileKey, string Disk, int Depth, string Format, string? OriginalBackingFile, string FileName, string SourcePath, long VirtualSize, long FileSize);

/// <summary>One disk's chain, top (depth 0) first.</summary>
public sealed record PlannedDisk(string Disk, IReadOnlyList<PlannedFile> Chain)
{
    public PlannedFile Top => Chain[0];
}

/// <summary>
/// Which files of a restore point to restore and what to call them. Pure: names come from the
/// catalog, and a disk or format name that is not a plain file-name part is refused rather than
/// sanitised, so a restored file can never land outside its directory.
/// </summary>
public static partial class RestorePlan
{
    [GeneratedRegex("^[A-Za-z0-9_][A-Za-z0-9_-]{0,63}$", RegexOptions.CultureInvariant)]
    private static partial Regex DiskName();

    [GeneratedRegex("^[a-z0-9]{1,16}$", RegexOptions.CultureInvariant)]
    private static partial Regex FormatName();

    /// <summary>Top image `vda.qcow2`; the file below it `vda.1.qcow2`, and so on.</summary>
    public static string FileNameFor(string disk, int depth, string format) =>
        depth == 0 ? $"{disk}.{format}" : $"{disk}.{depth}.{format}";

    public static IReadOnlyList<PlannedDisk> Build(string pointId, IReadOnlyList<RestorePointFileRow> files, IReadOnlyCollection<string>? onlyDisks)
    {
        var byDisk = files.GroupBy(f => f.Disk, StringComparer.Ordinal).ToDictionary(g => g.Key, g => g.OrderBy(f => f.Depth).ToList(), StringComparer.Ordinal);
        if (onlyDisks is { Count: > 0 })
        {
            var unknown = onlyDisks.Where(d => !byDisk.ContainsKey(d)).ToList();
            if (unknown.Count > 0)
                throw new RestoreException(FailureKind.NotFound,
                    $"restore point {pointId} has no disk {string.Join(", ", unknown.Select(d => $"'{d}'"))}; it has {string.Join(", ", byDisk.Keys.Order(StringComparer.Ordinal))}");
        }
        var plan = new List<PlannedDisk>();
        foreach (var (disk, chain) in byDisk.OrderBy(kv => kv.Key, StringComparer.Ordinal))
        {
            if (onlyDisks is { Count: > 0 } && !onlyDisks.Contains(disk)) continue;
            if (!DiskName().IsMatch(disk))
                throw new RestoreException(FailureKind.Usage, $"restore point {pointId}: disk name '{disk}' is not a plain name (letters, digits, _ and -); refusing to build a file name from it");
            for (var i = 0; i < chain.Count; i++)
            {
                if (chain[i].Depth != i)
                    throw new RestoreException(FailureKind.Failed, $"restore point {pointId}: disk {disk} has chain depths {string.Join(",", chain.Select(c => c.Depth))}, expected 0..{chain.Count - 1}");
                if (!FormatName().IsMatch(chain[i].Format))
                    throw new RestoreException(FailureKind.Usage, $"restore point {pointId}: file {chain[i].FileKey} has format '{chain[i].Format}', not a plain format name");
            }
            plan.Add(new PlannedDisk(disk, chain.Select(f =>
                new PlannedFile(f.FileKey, disk, f.Depth, f.Format, f.BackingFile, FileNameFor(disk, f.Depth, f.Format), f.SourcePath, f.VirtualSize, f.FileSize)).ToList()));
        }
        return plan;
    }
}
