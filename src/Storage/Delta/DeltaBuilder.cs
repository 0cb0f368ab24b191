namespace Backupd.Storage.Delta;

public enum DeltaOpKind : byte
{
    /// <summary>Copy <c>Length</c> bytes of the old file at <c>SourceOffset</c> (same offset: unchanged).</summary>
    Copy = 1,
    /// <summary>New bytes, carried in <c>Data</c>.</summary>
    Literal = 2,
    /// <summary>All-zero bytes (a hole).</summary>
    Zero = 3,
}

/// <summary>One step of a delta; ops come in increasing, contiguous target order. <c>Data</c> is valid only during the sink call.</summary>
public readonly record struct DeltaOp(DeltaOpKind Kind, long TargetOffset, long Length, long SourceOffset, ReadOnlyMemory<byte> Data)
{
    public bool IsUnchanged => Kind == DeltaOpKind.Copy && SourceOffset == TargetOffset;
}

public interface IDeltaSink
{
    void Add(in DeltaOp op);

    /// <summary>Called once after the last op with the new file's length.</summary>
    void Finish(long newLength);
}

public sealed record DeltaOptions
{
    /// <summary>Byte-by-byte rsync search through unmatched data; needs a signature with weak sums. Off for disk images.</summary>
    public bool RollingSearch { get; init; }
}

public sealed record DeltaStats(long NewLength, long ZeroBytes, long UnchangedBytes, long RelocatedBytes, long RollingMatchedBytes, long LiteralBytes);

/// <summary>
/// Computes the delta of a new file against an old file's signature, in tiers: all-zero block →
/// same block at the same offset → the same block anywhere in the old file → (optional) rolling
/// search for a block at any byte offset → literal. Reads the new file once, sequentially.
/// </summary>
public static class DeltaBuilder
{
    private const int MaxLiteral = 1 << 20;

    public static DeltaStats Build(Stream newFile, Signature signature, BlockHasher hasher, IDeltaSink sink, DeltaOptions? options = null)
    {
        if (hasher.KeyId != signature.KeyId)
        {
            throw new ArgumentException("the signature was made with another key", nameof(hasher));
        }
        var rolling = options?.RollingSearch ?? false;
        if (rolling && !signature.HasWeakSums)
        {
            throw new ArgumentException("rolling search needs a signature computed with weak sums", nameof(options));
        }
        var b = signature.BlockSize;
        var window = new SlidingBuffer(newFile, rolling ? 4 * b : 2 * b, b);
        var emitter = new Emitter(sink);
        long pos = 0;
        while (window.Ensure(pos, b) is var avail && avail > 0)
        {
            var n = (int)Math.Min(avail, b);
            var block = window.Span(pos, n);
            if (BlockHasher.IsZero(block))
            {
                // Zero where the old file was zero too counts as unchanged, so in-place updates skip it.
                if (pos % b == 0 && signature.Matches(pos / b, true, default, n))
                {
                    emitter.Copy(pos, pos, n, relocated: false);
                }
                else
                {
                    emitter.Zero(pos, n);
                }
                pos += n;
                continue;
            }
            var tag = hasher.Hash(block);
            if (pos % b == 0 && signature.Matches(pos / b, false, tag, n))
            {
                emitter.Copy(pos, pos, n, relocated: false);
                pos += n;
                continue;
            }
            if (n == b && signature.TryFind(tag, out var found))
            {
                emitter.Copy(pos, found * b, n, relocated: true);
                pos += n;
                continue;
            }
            if (rolling && n == b && TryRollingMatch(window, pos, signature, hasher, emitter, out var next))
            {
                pos = next;
                continue;
            }
            // The rolling search may have shifted the buffer: take the span again.
            window.Ensure(pos, n);
            emitter.Literal(pos, window.Span(pos, n));
            pos += n;
        }
        emitter.Flush();
        sink.Finish(pos);
        return new DeltaStats(pos, emitter.ZeroBytes, emitter.UnchangedBytes, emitter.RelocatedBytes, emitter.RollingBytes, emitter.LiteralBytes);
    }

    /// <summary>
    /// Slides a window byte by byte from <paramref name="pos"/>+1 looking for a block of the old file.
    /// On a hit, emits the skipped bytes as literal and the block as a copy.
    /// Gives up after one block length (the caller then emits one literal block and moves on), so the cost stays linear.
    /// </summary>
    private static bool TryRollingMatch(SlidingBuffer window, long pos, Signature signature, BlockHasher hasher, Emitter emitter, out long next)
    {
        var b = signature.BlockSize;
        next = pos;
        var avail = window.Ensure(pos, 2 * b);
        if (avail < b + 1)
        {
            return false;
        }
        var span = window.Span(pos, (int)avail);
        var roll = default(RollingChecksum);
        roll.Reset(span[..b]);
        var limit = (int)Math.Min(b, avail - b);
        for (var s = 1; s <= limit; s++)
        {
            roll.Roll(span[s - 1], span[s + b - 1]);
            var weak = roll.Value;
            var candidates = signature.FindWeak(weak);
            if (candidates.Count == 0)
            {
                continue;
            }
            var tag = hasher.Hash(span.Slice(s, b));
            foreach (var c in candidates)
            {
                if (signature.Tag(c) == tag)
                {
                    emitter.Literal(pos, span[..s]);
                    emitter.Copy(pos + s, c * b, b, relocated: true, rolling: true);
                    next = pos + s + b;
                    return true;
                }
            }
        }
        return false;
    }

    /// <summary>Coalesces adjacent ops of the same kind before they reach the sink.</summary>
    private sealed class Emitter(IDeltaSink sink)
    {
        private readonly byte[] _literal = new byte[MaxLiteral];
        private DeltaOpKind? _kind;
        private long _target;
        private long _length;
        private long _source;

        public long ZeroBytes { get; private set; }
        public long UnchangedBytes { get; private set; }
        public long RelocatedBytes { get; private set; }
        public long RollingBytes { get; private set; }
        public long LiteralBytes { get; private set; }

        public void Zero(long target, int length)
        {
            ZeroBytes += length;
            if (_kind != DeltaOpKind.Zero)
            {
                Flush();
                Start(DeltaOpKind.Zero, target, 0);
            }
            _length += length;
        }

        public void Copy(long target, long source, int length, bool relocated, bool rolling = false)
        {
            if (rolling)
            {
                RollingBytes += length;
            }
            else if (relocated)
            {
                RelocatedBytes += length;
            }
            else
            {
                UnchangedBytes += length;
            }
            if (_kind != DeltaOpKind.Copy || _source + _length != source)
            {
                Flush();
                Start(DeltaOpKind.Copy, target, source);
            }
            _length += length;
        }

        public void Literal(long target, ReadOnlySpan<byte> data)
        {
            LiteralBytes += data.Length;
            while (!data.IsEmpty)
            {
                if (_kind != DeltaOpKind.Literal || _length == MaxLiteral)
                {
                    Flush();
                    Start(DeltaOpKind.Literal, target, 0);
                }
                var n = (int)Math.Min(data.Length, MaxLiteral - _length);
                data[..n].CopyTo(_literal.AsSpan((int)_length));
                _length += n;
                target += n;
                data = data[n..];
            }
        }

        public void Flush()
        {
            if (_kind is { } kind && _length > 0)
            {
                var data = kind == DeltaOpKind.Literal ? _literal.AsMemory(0, (int)_length) : ReadOnlyMemory<byte>.Empty;
                sink.Add(new DeltaOp(kind, _target, _length, _source, data));
            }
            _kind = null;
            _length = 0;
        }

        private void Start(DeltaOpKind kind, long target, long source)
        {
            _kind = kind;
            _target = target;
            _source = source;
            _length = 0;
        }
    }
}

/// <summary>A window over a forward-only stream: keeps [start, end) in memory and refills by shifting.</summary>
internal sealed class SlidingBuffer(Stream input, int capacity, int minimumRead)
{
    private readonly byte[] _buffer = new byte[capacity + minimumRead];
    private long _start;
    private int _count;
    private bool _eof;

    /// <summary>Makes up to <paramref name="want"/> bytes from <paramref name="pos"/> available; returns how many are.</summary>
    public long Ensure(long pos, int want)
    {
        if (pos < _start)
        {
            throw new InvalidOperationException("sliding buffer cannot go back");
        }
        if (pos + want > _start + _count && !_eof)
        {
            var drop = (int)Math.Min(pos - _start, _count);
            if (drop > 0)
            {
                Buffer.BlockCopy(_buffer, drop, _buffer, 0, _count - drop);
                _count -= drop;
                _start += drop;
            }
            while (_start + _count < pos + want && _count < _buffer.Length)
            {
                var n = input.Read(_buffer, _count, _buffer.Length - _count);
                if (n == 0)
                {
                    _eof = true;
                    break;
                }
                _count += n;
            }
        }
        return Math.Min(want, _start + _count - pos);
    }

    public ReadOnlySpan<byte> Span(long pos, int length) => _buffer.AsSpan((int)(pos - _start), length);
}
