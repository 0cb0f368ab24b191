using Backupd.Storage.Repository;

namespace Backupd.Storage.Catalog;

/// <summary>Translates the repository's own metadata into catalog records (used after a backup and by `catalog rebuild`).</summary>
public static class RepositoryRecords
{
    /// <summary>Metadata name under which the workflow attaches the domain XML (INACTIVE|SECURE).</summary>
    public const string DomainXmlMetadata = "domain.xml";

    /// <summary>Metadata name for the consistency level ("application-consistent", "crash-consistent" or "shut-off"), attached by the workflow.</summary>
    public const string ConsistencyMetadata = "consistency";

    /// <summary>
    /// The catalog record of a repository point, or null when its group is not a domain UUID (file-level
    /// backups such as `backup --file` live in the repository only).
    /// </summary>
    public static RestorePointRecord? ToRecord(RestorePointInfo point, string repositoryDirectory, string? consistency = null)
    {
        if (!Guid.TryParse(point.GroupId, out var uuid)) return null;
        point.Metadata.TryGetValue(DomainXmlMetadata, out var xml);
        point.Metadata.TryGetValue(ConsistencyMetadata, out var recorded);
        var files = point.Files.Select(f =>
        {
            var (disk, depth) = RestorePointFileRecord.ParseKey(f.FileKey);
            return new RestorePointFileRecord(f.FileKey, disk, depth, f.SourcePath, f.Format, f.BackingFile, f.VirtualSize, f.FileSize, f.Digest, f.BytesRead, f.BytesWritten)
            {
                ReadMode = f.ReadMode, FullReadReason = f.FullReadReason, CleanButChanged = f.CleanButChanged,
            };
        }).ToList();
        return new RestorePointRecord(point.PointId, uuid, point.GroupName, Path.GetFullPath(repositoryDirectory), point.CreatedAt, xml, consistency ?? recorded, files);
    }
}
