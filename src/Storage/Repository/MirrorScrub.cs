using Backupd.Storage.Delta;

namespace Backupd.Storage.Repository;

/// <summary>
/// During a backup, re-reads mirror blocks whose source block is unchanged (a rotating sample plus the blocks
/// <c>verify</c> recorded in damage.json) and checks them against the stored signature. A block whose mirror bytes
/// do not match is rewritten from the source: the source block matched the old signature, so its bytes are the
/// previous version's content, and the block needs no undo entry (docs/repository-format.md, "Mirror scrub").
/// Without it a flipped mirror byte is inherited by every later point, because unchanged blocks are never read.
/// </summary>
internal sealed class MirrorScrub
{
    /// <summary>Sampled in runs of this many bytes, so a scrub on a spinning disk or a NAS is a few long reads, not many short ones.</summary>
    private const int StripeBytes = 1 << 20;
    private readonly HandleFile _mirror;
    private readonly Signature _old;
    private readonly BlockHasher _hasher;
    private readonly int _blockSize;
    private readonly long _stripeBlocks;
    private readonly long _sequence;
    private readonly int _cycle;
    private readonly HashSet<long> _listed;
    private readonly byte[] _buffer;
    private readonly List<long> _healed = [];
    private readonly List<long> _superseded = [];

    /// <param name="sequence">The run's point sequence: run s checks the stripes with index ≡ s (mod cycle).</param>
    /// <param name="cycle">Every block is checked once in this many consecutive runs; 0 checks only <paramref name="listed"/>.</param>
    public MirrorScrub(HandleFile mirror, Signature old, BlockHasher hasher, long sequence, int cycle, IEnumerable<long> listed, int maxChunkBytes)
    {
        _mirror = mirror;
        _old = old;
        _hasher = hasher;
        _blockSize = old.BlockSize;
        _stripeBlocks = Math.Max(1, StripeBytes / _blockSize);
        _cycle = cycle;
        _sequence = sequence;
        _listed = [.. listed];
        _buffer = new byte[maxChunkBytes];
    }

    public long BlocksChecked { get; private set; }

    /// <summary>Whether run <paramref name="sequence"/> of a cycle of <paramref name="cycle"/> samples <paramref name="block"/>.</summary>
    internal static bool Sampled(long block, long stripeBlocks, long sequence, int cycle) =>
        cycle > 0 && (block / stripeBlocks) % cycle == sequence % cycle;

    internal static long StripeBlocksFor(int blockSize) => Math.Max(1, StripeBytes / blockSize);

    private bool Wanted(long block) => _listed.Contains(block) || Sampled(block, _stripeBlocks, _sequence, _cycle);

    /// <summary>
    /// Checks the wanted blocks of one scan window; <paramref name="unchanged"/>[i]: block i matched the old signature
    /// (so the backup leaves it alone). Listed blocks the source changed are noted: their damaged bytes go to the undo record.
    /// </summary>
    public void Check(ScanChunk chunk, ReadOnlySpan<bool> unchanged)
    {
        var first = chunk.Offset / _blockSize;
        var runStart = -1;
        for (var i = 0; i <= chunk.Blocks; i++)
        {
            var wanted = i < chunk.Blocks && first + i < _old.BlockCount && Wanted(first + i);
            if (wanted && !unchanged[i])
            {
                if (_listed.Contains(first + i))
                {
                    _superseded.Add(first + i);
                }
                wanted = false;
            }
            if (wanted && runStart < 0)
            {
                runStart = i;
            }
            else if (!wanted && runStart >= 0)
            {
                CheckRun(chunk, runStart, i);
                runStart = -1;
            }
        }
    }

    /// <summary>Blocks [from, to) of the window: one read of the mirror, then block by block.</summary>
    private void CheckRun(ScanChunk chunk, int from, int to)
    {
        var start = from * _blockSize;
        var end = (int)Math.Min((long)to * _blockSize, Math.Min(chunk.Length, _old.Length - chunk.Offset));
        var read = _mirror.Read(chunk.Offset + start, _buffer.AsSpan(start, end - start));
        _buffer.AsSpan(start + read, end - start - read).Clear(); // a short mirror reads as zeros: then it does not match
        for (var i = from; i < to; i++)
        {
            var offset = i * _blockSize;
            var n = Math.Min(_blockSize, end - offset);
            var block = (chunk.Offset / _blockSize) + i;
            var span = _buffer.AsSpan(offset, n);
            var zero = BlockHasher.IsZero(span);
            BlocksChecked++;
            if (_old.Matches(block, zero, zero ? default : _hasher.Hash(span), n))
            {
                continue;
            }
            if (chunk.Zero[i])
            {
                _mirror.Zero(chunk.Offset + offset, n);
            }
            else
            {
                _mirror.Write(chunk.Offset + offset, chunk.Data.AsSpan(offset, n));
            }
            _healed.Add(block);
        }
    }

    public IReadOnlyList<long> Healed => _healed;
    public IReadOnlyList<long> Superseded => _superseded;
}
