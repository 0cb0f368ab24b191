using System.Threading.Channels;
using Backupd.Storage.Delta;
using Microsoft.Win32.SafeHandles;

namespace Backupd.Storage.Repository;

/// <summary>
/// Reads a file once, front to back, in fixed windows, skipping holes with SEEK_DATA/SEEK_HOLE. Within a
/// window every core reads a piece and hashes it straight away, while the piece is still in that core's
/// cache (a separate reader thread would copy the data through memory once more and compete with the
/// hashers for the two cores); the consumer handles the previous window meanwhile.
/// Memory: three window buffers (8 MiB each, or one block if larger).
/// </summary>
internal static class SourceScan
{
    private const int ChunkBytes = 8 << 20;
    private const int PieceBytes = 1 << 20;
    private const int Buffers = 3;

    /// <param name="throttle">Awaited with the byte count of each window's data before it is read (a bandwidth limit); holes cost nothing.</param>
    /// <summary>The largest window <see cref="RunAsync"/> delivers for <paramref name="blockSize"/>.</summary>
    public static int MaxChunkBytes(int blockSize) => Math.Max(ChunkBytes, blockSize);

    /// <param name="skip">Block index → true for a block not to read at all (a changed-block plan calls it clean); it is delivered as a hole and the consumer supplies its tag.</param>
    public static async Task<long> RunAsync(SafeFileHandle file, long length, int blockSize, BlockHasher hasher, Action<ScanChunk> consume, CancellationToken ct,
        Func<long, CancellationToken, ValueTask>? throttle = null, Func<long, bool>? skip = null)
    {
        var chunkBytes = MaxChunkBytes(blockSize);
        var maxBlocks = chunkBytes / blockSize;
        var free = Channel.CreateBounded<ScanChunk>(Buffers);
        var full = Channel.CreateBounded<ScanChunk>(Buffers);
        for (var i = 0; i < Buffers; i++)
        {
            free.Writer.TryWrite(new ScanChunk(chunkBytes, maxBlocks));
        }
        long bytesRead = 0;
        using var stop = CancellationTokenSource.CreateLinkedTokenSource(ct);
        var producer = Task.Run(async () =>
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
                    var dataBytes = MarkHoles(chunk, extents, blockSize, skip);
                    if (throttle is not null && dataBytes > 0) await throttle(dataBytes, stop.Token);
                    ReadAndHash(file, length, chunk, blockSize, hasher);
                    bytesRead += dataBytes;
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
                consume(chunk);
                await free.Writer.WriteAsync(chunk, ct);
            }
        }
        finally
        {
            await stop.CancelAsync();
            try
            {
                await producer;
            }
            catch (OperationCanceledException)
            {
            }
        }
        return Interlocked.Read(ref bytesRead);
    }

    /// <summary>
    /// Marks the blocks of the window that hold no data, and those <paramref name="skip"/> excludes. Whole blocks around the
    /// data: a block is either read completely or not at all. Returns the bytes to read.
    /// </summary>
    private static long MarkHoles(ScanChunk chunk, DataExtents extents, int blockSize, Func<long, bool>? skip)
    {
        Array.Fill(chunk.Hole, true, 0, chunk.Blocks);
        var window = chunk.Offset;
        var end = window + chunk.Length;
        foreach (var (dataStart, dataEnd) in extents.Within(window, end))
        {
            var firstBlock = (int)((dataStart - window) / blockSize);
            var lastBlock = (int)((dataEnd - window + blockSize - 1) / blockSize);
            Array.Fill(chunk.Hole, false, firstBlock, lastBlock - firstBlock);
        }
        if (skip is not null)
        {
            var first = window / blockSize;
            for (var i = 0; i < chunk.Blocks; i++)
            {
                chunk.Hole[i] |= skip(first + i);
            }
        }
        long bytes = 0;
        for (var i = 0; i < chunk.Blocks; i++)
        {
            if (!chunk.Hole[i])
            {
                bytes += Math.Min(blockSize, chunk.Length - ((long)i * blockSize));
            }
        }
        return bytes;
    }

    /// <summary>Reads the data blocks of the window and sets every block's zero flag and tag; pieces in parallel.</summary>
    private static void ReadAndHash(SafeFileHandle file, long length, ScanChunk chunk, int blockSize, BlockHasher hasher)
    {
        var blocksPerPiece = Math.Max(1, PieceBytes / blockSize);
        var pieces = (chunk.Blocks + blocksPerPiece - 1) / blocksPerPiece;
        void Piece(int piece)
        {
            var first = piece * blocksPerPiece;
            var last = Math.Min(chunk.Blocks, first + blocksPerPiece);
            for (var i = first; i < last;)
            {
                if (chunk.Hole[i])
                {
                    i++;
                    continue;
                }
                var run = i;
                while (run < last && !chunk.Hole[run])
                {
                    run++;
                }
                var from = i * blockSize;
                var to = Math.Min(run * blockSize, chunk.Length);
                ReadExactly(file, chunk.Data.AsSpan(from, to - from), chunk.Offset + from, length);
                i = run;
            }
            BlockDiff.HashRange(chunk.Data, chunk.Length, blockSize, hasher, chunk.Zero, chunk.Tags, chunk.Hole, first, last, step: 1);
        }
        if (pieces <= 1 || Environment.ProcessorCount <= 1)
        {
            for (var p = 0; p < pieces; p++)
            {
                Piece(p);
            }
            return;
        }
        Parallel.For(0, pieces, Piece);
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
}

/// <summary>
/// The data extents of a file, found with SEEK_DATA/SEEK_HOLE as the reader moves forward. Where the file
/// system does not support them, and always on a block device (whose answers depend on the kernel and
/// driver; a wrong "hole" would lose data), the whole file counts as data.
/// </summary>
internal sealed class DataExtents(SafeFileHandle file, long length)
{
    private long _start = -1;
    private long _end = -1;
    private bool _unsupported = Native.IsBlockDevice(file, "the source");

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
