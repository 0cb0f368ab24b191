using System.Threading.Channels;
using Backupd.Storage.Delta;
using Microsoft.Win32.SafeHandles;

namespace Backupd.Storage.Repository;

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

/// <summary>
/// Reads a file once, front to back, in fixed windows, skipping holes with SEEK_DATA/SEEK_HOLE, while hashing
/// blocks on every core: one task reads the next window while the previous one is hashed in parallel and
/// handed to the consumer. Memory: three window buffers (8 MiB each, or one block if larger).
/// </summary>
internal static class SourceScan
{
    private const int ChunkBytes = 8 << 20;
    private const int Buffers = 3;

    /// <param name="throttle">Awaited with the byte count before each read (a bandwidth limit); holes cost nothing.</param>
    public static async Task<long> RunAsync(SafeFileHandle file, long length, int blockSize, BlockHasher hasher, Action<ScanChunk> consume, CancellationToken ct,
        Func<long, CancellationToken, ValueTask>? throttle = null)
    {
        var chunkBytes = Math.Max(ChunkBytes, blockSize);
        var maxBlocks = chunkBytes / blockSize;
        var free = Channel.CreateBounded<ScanChunk>(Buffers);
        var full = Channel.CreateBounded<ScanChunk>(Buffers);
        for (var i = 0; i < Buffers; i++)
        {
            free.Writer.TryWrite(new ScanChunk(chunkBytes, maxBlocks));
        }
        long bytesRead = 0;
        using var stop = CancellationTokenSource.CreateLinkedTokenSource(ct);
        var reader = Task.Run(async () =>
        {
            try
            {
                var extents = new DataExtents(file, length);
                for (long window = 0; window < length; window += chunkBytes)
                {
                    var chunk = await free.Reader.ReadAsync(stop.Token);
                    chunk.Offset = window;
                    chunk.Length = (int)Math.Min(chunkBytes, length - window);
                    chunk.Blocks = (chunk.Length + blockSize - 1) / blockSize;
                    Array.Fill(chunk.Hole, true, 0, chunk.Blocks);
                    var end = window + chunk.Length;
                    foreach (var (dataStart, dataEnd) in extents.Within(window, end))
                    {
                        // Whole blocks around the data: a block is either read completely or known to be zero.
                        var from = Math.Max(window, dataStart / blockSize * blockSize);
                        var to = Math.Min(end, (dataEnd + blockSize - 1) / blockSize * blockSize);
                        var firstBlock = (int)((from - window) / blockSize);
                        var lastBlock = (int)((to - window + blockSize - 1) / blockSize);
                        if (!chunk.Hole[firstBlock])
                        {
                            from = window + ((long)(firstBlock + 1) * blockSize); // already read with the previous extent
                        }
                        if (from < to)
                        {
                            if (throttle is not null) await throttle(to - from, stop.Token);
                            ReadExactly(file, chunk.Data.AsSpan((int)(from - window), (int)(to - from)), from, length);
                            bytesRead += to - from;
                        }
                        Array.Fill(chunk.Hole, false, firstBlock, lastBlock - firstBlock);
                    }
                    await full.Writer.WriteAsync(chunk, stop.Token);
                }
                full.Writer.Complete();
            }
            catch (Exception e)
            {
                full.Writer.Complete(e);
            }
        }, stop.Token);

        try
        {
            await foreach (var chunk in full.Reader.ReadAllAsync(ct))
            {
                HashBlocks(chunk.Data, chunk.Length, blockSize, hasher, chunk.Zero, chunk.Tags, chunk.Hole);
                consume(chunk);
                await free.Writer.WriteAsync(chunk, ct);
            }
        }
        finally
        {
            await stop.CancelAsync();
            try
            {
                await reader;
            }
            catch (OperationCanceledException)
            {
            }
        }
        return Interlocked.Read(ref bytesRead);
    }

    private static void ReadExactly(SafeFileHandle file, Span<byte> span, long offset, long length)
    {
        var n = 0;
        while (n < span.Length)
        {
            var r = RandomAccess.Read(file, span[n..], offset + n);
            if (r == 0)
            {
                throw new IOException($"source shrank while being read: expected {length} bytes, end of file at {offset + n}");
            }
            n += r;
        }
    }

    /// <summary>Zero flags and tags for every block of data[0..length), on all cores; blocks marked as holes are zero without reading.</summary>
    internal static void HashBlocks(byte[] data, int length, int blockSize, BlockHasher hasher, bool[] zero, UInt128[] tags, bool[]? hole = null)
    {
        var blocks = (length + blockSize - 1) / blockSize;
        var workers = Math.Min(Environment.ProcessorCount, blocks);
        void Range(int part)
        {
            for (var i = part; i < blocks; i += workers)
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
        if (workers <= 1)
        {
            Range(0);
            return;
        }
        Parallel.For(0, workers, Range);
    }
}

/// <summary>
/// The data extents of a file, found with SEEK_DATA/SEEK_HOLE as the reader moves forward. Where the file
/// system (or a device) does not support them, the whole file counts as data.
/// </summary>
internal sealed class DataExtents(SafeFileHandle file, long length)
{
    private long _start = -1;
    private long _end = -1;
    private bool _unsupported;

    /// <summary>Data ranges intersecting [from, to), clipped to it; calls must move forward.</summary>
    public IEnumerable<(long Start, long End)> Within(long from, long to)
    {
        var pos = from;
        while (pos < to)
        {
            if (pos >= _end)
            {
                Find(pos);
            }
            if (_start >= to)
            {
                yield break;
            }
            var s = Math.Max(pos, _start);
            var e = Math.Min(to, _end);
            yield return (s, e);
            pos = e;
        }
    }

    private void Find(long pos)
    {
        if (_unsupported)
        {
            (_start, _end) = (pos, length);
            return;
        }
        try
        {
            var d = Native.NextData(file, pos);
            if (d < 0 || d >= length)
            {
                (_start, _end) = (long.MaxValue, long.MaxValue);
                return;
            }
            (_start, _end) = (d, Math.Min(length, Native.NextHole(file, d)));
        }
        catch (IOException)
        {
            _unsupported = true;
            (_start, _end) = (pos, length);
        }
    }
}
