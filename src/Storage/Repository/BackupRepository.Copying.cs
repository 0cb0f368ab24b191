namespace Backupd.Storage.Repository;

/// <summary>Reading a point's files for a copy to another repository (Storage/Offsite).</summary>
public sealed partial class BackupRepository
{
    internal PointDocument RequirePoint(string pointId) =>
        FindPointDocument(pointId) ?? throw new RestorePointNotFoundException($"restore point {pointId} does not exist in {Directory}");

    /// <summary>
    /// Reads one file version front to back in chunks of 8 MiB (whole blocks, zero blocks flagged), the group's
    /// lock held shared, and checks the recorded digest at the end: a copy publishes nothing of a version that
    /// does not read back as it was backed up.
    /// </summary>
    internal void ReadFileVersion(PointDocument point, PointFileDocument file, ChunkAction onChunk, IProgress<long>? progress, CancellationToken ct)
    {
        using var groupLock = GroupLock.Shared(Beneath, _layout.Group(point.GroupId), "copy");
        var chain = VersionChain(LoadPoints(point.GroupId), file.FileKey);
        var undoPaths = UndoPathsFor(point.GroupId, file.FileKey, chain, file.VersionId);
        using var reader = new VersionReader(Beneath, _layout.Mirror(point.GroupId, file.FileKey), undoPaths);
        if (reader.Length != file.FileSize)
        {
            throw new RepositoryCorruptException($"'{file.FileKey}' at {point.PointId}: reconstructed length {reader.Length}, recorded {file.FileSize}; not copied (run verify)");
        }
        var digest = ReadVersion(reader, file.BlockSize, onChunk, progress, ct).Digest();
        if (digest != file.Digest)
        {
            throw new RepositoryCorruptException($"'{file.FileKey}' at {point.PointId}: reads back with digest {digest}, recorded {file.Digest}; not copied (run verify)");
        }
    }
}
