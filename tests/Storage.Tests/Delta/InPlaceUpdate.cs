using Backupd.Storage.Delta;

namespace Backupd.Storage.Tests.Delta;

/// <summary>Updates an in-memory file the way a backup updates a mirror: <see cref="BlockDiff"/> over the new bytes, changed blocks through <see cref="InPlacePatcher"/>.</summary>
internal static class InPlaceUpdate
{
    /// <summary>Turns <paramref name="file"/> (holding <paramref name="from"/>) into <paramref name="to"/>; the old bytes go to <paramref name="undo"/>.</summary>
    public static BlockDiff Apply(MemoryStream file, byte[] from, byte[] to, BlockHasher hasher, int blockSize, MemoryStream undo, bool compress = true) =>
        Apply(file, from, to, hasher, blockSize, undo, compress, out _);

    /// <summary>As above; <paramref name="writer"/> is the undo record's writer (sizes, entry counts).</summary>
    public static BlockDiff Apply(MemoryStream file, byte[] from, byte[] to, BlockHasher hasher, int blockSize, MemoryStream undo, bool compress, out UndoRecordWriter writer)
    {
        var old = Signature.Compute(new MemoryStream(from), hasher, blockSize);
        writer = new UndoRecordWriter(undo, from.Length, compress: compress);
        var target = new StreamRandomAccessFile(file);
        var patcher = new InPlacePatcher(target, writer);
        var diff = new BlockDiff(blockSize, to.Length, hasher, old, patcher);
        foreach (var chunk in Chunks(to, blockSize, hasher, chunkBlocks: 3))
        {
            diff.Apply(chunk, new bool[chunk.Blocks]);
        }
        patcher.Complete(to.Length);
        writer.Complete();
        target.Flush();
        return diff;
    }

    /// <summary>The data cut into hashed windows of <paramref name="chunkBlocks"/> blocks, as the source scan delivers them (no holes).</summary>
    public static IEnumerable<ScanChunk> Chunks(byte[] data, int blockSize, BlockHasher hasher, int chunkBlocks)
    {
        var chunkBytes = chunkBlocks * blockSize;
        for (long offset = 0; offset < data.Length; offset += chunkBytes)
        {
            var chunk = new ScanChunk(chunkBytes, chunkBlocks) { Offset = offset, Length = (int)Math.Min(chunkBytes, data.Length - offset) };
            chunk.Blocks = (chunk.Length + blockSize - 1) / blockSize;
            data.AsSpan((int)offset, chunk.Length).CopyTo(chunk.Data);
            BlockDiff.HashBlocks(chunk.Data, chunk.Length, blockSize, hasher, chunk.Zero, chunk.Tags);
            yield return chunk;
        }
    }
}
