namespace Backupd.Storage.Delta;

/// <summary>
/// A window of a file as the scan delivers it. Per block: <see cref="Hole"/> (inside a hole, not read, its
/// bytes in <see cref="Data"/> are stale), zero flag and keyed tag (tags only for non-zero blocks).
/// Valid only during the callback.
/// </summary>
internal sealed class ScanChunk(int chunkBytes, int maxBlocks)
{
    public long Offset { get; set; }
    public int Length { get; set; }
    public byte[] Data { get; } = new byte[chunkBytes];
    public int Blocks { get; set; }
    public bool[] Hole { get; } = new bool[maxBlocks];
    public bool[] Zero { get; } = new bool[maxBlocks];
    public UInt128[] Tags { get; } = new UInt128[maxBlocks];
}

/// <summary>Where <see cref="BlockDiff"/> sends the blocks that changed: the in-place patcher, or a new mirror file.</summary>
internal interface IBlockSink
{
    void Write(long offset, ReadOnlySpan<byte> data);

    void WriteZeros(long offset, long length);
}

/// <summary>
/// The one place where a backup hashes bytes and compares them: <see cref="HashBlocks"/> gives every block of a
/// window its zero flag and keyed tag; <see cref="Apply"/> compares them with the previous version's signature,
/// records them for the new signature and sends each run of changed blocks to the sink with one call.
/// Without a previous version (a new mirror) zero blocks stay holes: nothing is written and nothing counts as changed.
/// </summary>
internal sealed class BlockDiff(int blockSize, long length, BlockHasher hasher, Signature? previous, IBlockSink sink)
{
    private readonly SignatureBuilder _next = new(blockSize, hasher.KeyId, expectedBlocks: Signature.BlockCountFor(length, blockSize));

    /// <summary>Blocks that differ from the previous version (every non-zero block of a new mirror).</summary>
    public long BlocksChanged { get; private set; }

    /// <summary>Bytes of non-zero data sent to the sink.</summary>
    public long BytesWritten { get; private set; }

    /// <summary>The new version's signature; call once, after the last chunk.</summary>
    public Signature Build() => _next.Build();

    /// <summary>Compares the chunk's blocks (hashed already) and writes the changed ones; <paramref name="unchanged"/> receives per block whether it matched.</summary>
    public void Apply(ScanChunk chunk, Span<bool> unchanged)
    {
        var runStart = -1; // first block of a run of changed non-zero blocks, written with one call
        for (var i = 0; i < chunk.Blocks; i++)
        {
            var offset = chunk.Offset + ((long)i * blockSize);
            var n = (int)Math.Min(blockSize, length - offset);
            var zero = chunk.Zero[i];
            var tag = chunk.Tags[i];
            _next.Add(zero, tag, 0, n);
            unchanged[i] = previous is not null && previous.Matches(offset / blockSize, zero, tag, n);
            if (unchanged[i] || zero)
            {
                runStart = FlushRun(chunk, runStart, i);
                if (!unchanged[i] && previous is not null)
                {
                    sink.WriteZeros(offset, n);
                    BlocksChanged++;
                }
                continue;
            }
            BlocksChanged++;
            if (runStart < 0)
            {
                runStart = i;
            }
        }
        FlushRun(chunk, runStart, chunk.Blocks);
    }

    private int FlushRun(ScanChunk chunk, int runStart, int endBlock)
    {
        if (runStart >= 0)
        {
            var from = runStart * blockSize;
            var len = Math.Min(endBlock * blockSize, chunk.Length) - from;
            sink.Write(chunk.Offset + from, chunk.Data.AsSpan(from, len));
            BytesWritten += len;
        }
        return -1;
    }

    /// <summary>Zero flags and tags for every block of data[0..length), on all cores; blocks marked as holes are zero without reading.</summary>
    public static void HashBlocks(byte[] data, int length, int blockSize, BlockHasher hasher, bool[] zero, UInt128[] tags, bool[]? hole = null)
    {
        var blocks = (length + blockSize - 1) / blockSize;
        var workers = Math.Min(Environment.ProcessorCount, blocks);
        if (workers <= 1)
        {
            HashRange(data, length, blockSize, hasher, zero, tags, hole, 0, blocks, step: 1);
            return;
        }
        Parallel.For(0, workers, part => HashRange(data, length, blockSize, hasher, zero, tags, hole, part, blocks, step: workers));
    }

    /// <summary>Zero flag and tag for blocks first, first+step, … below end (one core's share).</summary>
    public static void HashRange(byte[] data, int length, int blockSize, BlockHasher hasher, bool[] zero, UInt128[] tags, bool[]? hole, int first, int end, int step)
    {
        for (var i = first; i < end; i += step)
        {
            if (hole is not null && hole[i])
            {
                zero[i] = true;
                tags[i] = default;
                continue;
            }
            var span = data.AsSpan(i * blockSize, Math.Min(blockSize, length - (i * blockSize)));
            zero[i] = BlockHasher.IsZero(span);
            tags[i] = zero[i] ? default : hasher.Hash(span);
        }
    }
}

/// <summary>The sink of a new mirror: data written in place, zero blocks left as holes of the fresh file.</summary>
internal sealed class NewMirrorSink(IRandomAccessFile mirror) : IBlockSink
{
    public void Write(long offset, ReadOnlySpan<byte> data) => mirror.Write(offset, data);

    public void WriteZeros(long offset, long length)
    {
    }
}
