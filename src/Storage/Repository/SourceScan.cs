using System.Threading.Channels;
using Backupd.Storage.Delta;
using Microsoft.Win32.SafeHandles;

namespace Backupd.Storage.Repository;

/// <summary>
/// A chunk of a file as the scan delivers it: <see cref="Data"/> is null for a hole (every block zero).
/// Per block: zero flag and keyed tag (tags only for non-zero blocks). Valid only during the callback.
/// </summary>
internal sealed class ScanChunk(int maxBlocks)
{
    public long Offset { get; set; }
    public int Length { get; set; }
    public byte[]? Data { get; set; }
    public int Blocks { get; set; }
    public bool[] Zero { get; } = new bool[maxBlocks];
    public UInt128[] Tags { get; } = new UInt128[maxBlocks];
}

/// <summary>
/// Reads a file once, front to back, skipping holes with SEEK_DATA/SEEK_HOLE, while hashing blocks on every
/// core: one task reads the next chunk while the previous one is hashed in parallel and handed to the
/// consumer. Memory: three chunk buffers (8 MiB each, or one block if larger).
/// </summary>
internal static class SourceScan
{
    private const int ChunkBytes = 8 << 20;
    private const int Buffers = 3;

    public static async Task<long> RunAsync(SafeFileHandle file, long length, int blockSize, BlockHasher hasher, Action<ScanChunk> consume, CancellationToken ct)
    {
        var chunkBytes = Math.Max(ChunkBytes, blockSize);
        var maxBlocks = chunkBytes / blockSize;
        var free = Channel.CreateBounded<ScanChunk>(Buffers);
        var full = Channel.CreateBounded<ScanChunk>(Buffers);
        for (var i = 0; i < Buffers; i++)
        {
            free.Writer.TryWrite(new ScanChunk(maxBlocks) { Data = new byte[chunkBytes] });
        }
        long bytesRead = 0;
        using var stop = CancellationTokenSource.CreateLinkedTokenSource(ct);
        var reader = Task.Run(async () =>
        {
            try
            {
                foreach (var (offset, len, isData) in Ranges(file, length, blockSize, chunkBytes))
                {
                    var chunk = await free.Reader.ReadAsync(stop.Token);
                    chunk.Offset = offset;
                    chunk.Length = len;
                    chunk.Blocks = (int)((len + blockSize - 1) / blockSize);
                    if (isData)
                    {
                        chunk.Data ??= new byte[chunkBytes];
                        var span = chunk.Data.AsSpan(0, len);
                        var n = 0;
                        while (n < len)
                        {
                            var r = RandomAccess.Read(file, span[n..], offset + n);
                            if (r == 0)
                            {
                                throw new IOException($"source shrank while being read: expected {length} bytes, end of file at {offset + n}");
                            }
                            n += r;
                        }
                        Interlocked.Add(ref bytesRead, len);
                    }
                    else
                    {
                        chunk.Data = null;
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
                Hash(chunk, blockSize, hasher);
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
        return bytesRead;
    }

    /// <summary>Splits [0, length) into chunks of data (block-aligned around SEEK_DATA extents) and holes.</summary>
    internal static IEnumerable<(long Offset, int Length, bool IsData)> Ranges(SafeFileHandle file, long length, int blockSize, int chunkBytes)
    {
        long pos = 0;
        var sparseAware = true;
        while (pos < length)
        {
            long dataStart, dataEnd;
            if (sparseAware)
            {
                try
                {
                    dataStart = Native.NextData(file, pos);
                    dataEnd = dataStart < 0 ? -1 : Native.NextHole(file, dataStart);
                }
                catch (IOException)
                {
                    sparseAware = false; // not supported here (e.g. a device): read everything
                    continue;
                }
            }
            else
            {
                dataStart = pos;
                dataEnd = length;
            }
            if (dataStart < 0 || dataStart >= length)
            {
                foreach (var hole in Split(pos, length, chunkBytes, false))
                {
                    yield return hole;
                }
                yield break;
            }
            var alignedStart = Math.Max(pos, dataStart / blockSize * blockSize);
            var alignedEnd = Math.Min(length, (Math.Min(dataEnd, length) + blockSize - 1) / blockSize * blockSize);
            foreach (var hole in Split(pos, alignedStart, chunkBytes, false))
            {
                yield return hole;
            }
            foreach (var data in Split(alignedStart, alignedEnd, chunkBytes, true))
            {
                yield return data;
            }
            pos = alignedEnd;
        }
    }

    private static IEnumerable<(long, int, bool)> Split(long from, long to, int chunkBytes, bool isData)
    {
        for (var o = from; o < to; o += chunkBytes)
        {
            yield return (o, (int)Math.Min(chunkBytes, to - o), isData);
        }
    }

    private static void Hash(ScanChunk chunk, int blockSize, BlockHasher hasher)
    {
        if (chunk.Data is null)
        {
            Array.Fill(chunk.Zero, true, 0, chunk.Blocks);
            return;
        }
        HashBlocks(chunk.Data, chunk.Length, blockSize, hasher, chunk.Zero, chunk.Tags);
    }

    /// <summary>Zero flags and tags for every block of data[0..length), on all cores.</summary>
    internal static void HashBlocks(byte[] data, int length, int blockSize, BlockHasher hasher, bool[] zero, UInt128[] tags)
    {
        var blocks = (length + blockSize - 1) / blockSize;
        var workers = Math.Min(Environment.ProcessorCount, blocks);
        void Range(int part)
        {
            for (var i = part; i < blocks; i += workers)
            {
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
