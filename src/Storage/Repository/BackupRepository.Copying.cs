using Backupd.Storage.Delta;

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

    /// <summary>
    /// For a copy that already holds <paramref name="olderVersionId"/> of this file: where the newest version (the one
    /// <paramref name="file"/> names, the mirror) may differ from it, and a reader of those ranges. <paramref name="olderDigest"/>
    /// is the digest the copy recorded for the older version: a copy of another repository's file does not match it. The ranges are
    /// those the undo records between the two versions restore, and everything from the shortest length any version
    /// between had; blocks outside them hold the same bytes in both versions. Null — read the whole version
    /// instead — when <paramref name="file"/> is not the mirror's version, the older version is not in its chain, or
    /// the mirror's signature does not say what the point recorded. The group's lock is held shared until disposed.
    /// </summary>
    internal MirrorChanges? ChangesSince(PointDocument point, PointFileDocument file, string olderVersionId, string olderDigest)
    {
        var groupLock = GroupLock.Shared(Beneath, _layout.Group(point.GroupId), "copy");
        try
        {
            var chain = VersionChain(LoadPoints(point.GroupId), file.FileKey);
            var older = chain.FindIndex(v => v.VersionId == olderVersionId);
            if (chain.Count == 0 || chain[^1].VersionId != file.VersionId || older < 0 || chain[older].Digest != olderDigest)
            {
                groupLock.Dispose();
                return null;
            }
            Signature signature;
            using (var sigStream = Beneath.OpenRead(_layout.Signature(point.GroupId, file.FileKey)))
            {
                signature = SignatureFormat.Read(sigStream, Hasher.KeyId);
            }
            if (signature.Digest() != file.Digest || signature.Length != file.FileSize || signature.BlockSize != file.BlockSize)
            {
                groupLock.Dispose();
                return null; // the full read reports what is wrong
            }
            var ranges = new List<(long Offset, long Length)>();
            var tailFrom = Math.Min(file.FileSize, chain[older].FileSize);
            foreach (var path in UndoPathsFor(point.GroupId, file.FileKey, chain, olderVersionId))
            {
                using var stream = Beneath.OpenRead(path);
                using var record = new UndoRecordReader(stream);
                tailFrom = Math.Min(tailFrom, record.TargetLength);
                while (record.TryRead(out var e))
                {
                    ranges.Add((e.Offset, e.Length));
                }
            }
            return new MirrorChanges(groupLock, new VersionReader(Beneath, _layout.Mirror(point.GroupId, file.FileKey), []), signature, Hasher, ranges, tailFrom);
        }
        catch
        {
            groupLock.Dispose();
            throw;
        }
    }
}

/// <summary>
/// What <see cref="BackupRepository.ChangesSince"/> found: the changed ranges, and reads of the mirror in which every
/// block is checked against the mirror's signature (itself checked against the point's digest), so a copy that reads
/// only these publishes nothing the local repository does not hold.
/// </summary>
internal sealed class MirrorChanges(IDisposable groupLock, VersionReader mirror, Signature signature, BlockHasher hasher,
    IReadOnlyList<(long Offset, long Length)> ranges, long tailFrom) : IDisposable
{
    /// <summary>Byte ranges (unsorted, may overlap) where the versions may differ.</summary>
    public IReadOnlyList<(long Offset, long Length)> Ranges => ranges;

    /// <summary>Every byte from here on may differ (the shortest length of the versions between).</summary>
    public long TailFrom => tailFrom;

    public int BlockSize => signature.BlockSize;

    /// <summary>Reads <paramref name="length"/> bytes at a block-aligned <paramref name="offset"/> into <paramref name="buffer"/>, flagging zero blocks.</summary>
    /// <returns>The bytes read (less at the end of the file).</returns>
    public int Read(long offset, int length, byte[] buffer, bool[] zero, string fileKey)
    {
        var blockSize = signature.BlockSize;
        var n = (int)Math.Min(length, signature.Length - offset);
        var blocks = (n + blockSize - 1) / blockSize;
        var holes = new bool[blocks];
        var tags = new UInt128[blocks];
        mirror.Read(offset, buffer.AsSpan(0, n), holes, blockSize);
        BlockDiff.HashBlocks(buffer, n, blockSize, hasher, zero, tags, holes);
        for (var i = 0; i < blocks; i++)
        {
            var block = (offset / blockSize) + i;
            if (!signature.Matches(block, zero[i], tags[i], signature.BlockLength(block)))
            {
                throw new RepositoryCorruptException($"'{fileKey}': block {block} of the mirror does not match its signature; not copied (run verify)");
            }
        }
        return n;
    }

    public void Dispose()
    {
        mirror.Dispose();
        groupLock.Dispose();
    }
}
