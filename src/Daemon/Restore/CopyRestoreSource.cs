using Backupd.Storage.Catalog;
using Backupd.Storage.Offsite;

namespace Backupd.Daemon.Restore;

/// <summary>
/// Restored bytes from a copy repository (a directory or `backupd serve` over ssh): each chunk authenticated and
/// checked against its id, the file digest checked at the end, never over an existing file. With it every
/// <see cref="DomainRestore"/> mode works from a copy as from the local repository.
/// </summary>
public sealed class CopyRestoreSource(CopyRepository copy) : IRestoreSource
{
    public Task RestoreFileAsync(string pointId, string fileKey, string targetPath, IProgress<long>? progress, CancellationToken ct) =>
        Task.Run(() => copy.RestoreFile(pointId, fileKey, targetPath, progress, ct), ct);

    public Task<bool> MatchesAsync(string pointId, string fileKey, string path, CancellationToken ct) =>
        Task.Run(() => copy.Matches(pointId, fileKey, path, ct), ct);

    /// <summary>A copied point's files as the catalog would list them (disk and depth from the file key), for <see cref="RestorePlan"/>.</summary>
    public static IReadOnlyList<RestorePointFileRow> Files(CopyIndexHeader header) => header.Files.Select(f =>
    {
        var (disk, depth) = RestorePointFileRecord.ParseKey(f.FileKey);
        return new RestorePointFileRow
        {
            FileKey = f.FileKey, Disk = disk, Depth = depth, SourcePath = f.SourcePath, Format = f.Format, BackingFile = f.BackingFile,
            VirtualSize = f.VirtualSize, FileSize = f.FileSize, Digest = f.LocalDigest,
        };
    }).ToList();
}
