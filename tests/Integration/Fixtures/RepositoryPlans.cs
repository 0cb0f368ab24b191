using Backupd.Daemon.Restore;
using Backupd.Storage.Catalog;
using Backupd.Storage.Repository;

namespace Backupd.Integration.Fixtures;

/// <summary>A restore plan for one disk of a point, built from the repository's own record (what the catalog would hold), for tests without a catalog.</summary>
public static class RepositoryPlans
{
    public static IReadOnlyList<PlannedDisk> Of(string repositoryPath, string pointId, string disk)
    {
        using var repository = BackupRepository.Open(repositoryPath);
        var point = repository.FindPoint(pointId)!;
        var rows = point.Files.Where(f => f.FileKey.StartsWith(disk + ".", StringComparison.Ordinal)).Select(f => new RestorePointFileRow
        {
            FileKey = f.FileKey, Disk = disk, Depth = int.Parse(f.FileKey[(disk.Length + 1)..], System.Globalization.CultureInfo.InvariantCulture),
            SourcePath = f.SourcePath, Format = f.Format, BackingFile = f.BackingFile, VirtualSize = f.VirtualSize, FileSize = f.FileSize, Digest = f.Digest,
        }).ToList();
        return RestorePlan.Build(pointId, rows, null);
    }
}
