namespace Backupd.Storage.Delta;

/// <summary>
/// Changes a file in place while capturing an undo record. For every range it is asked to change it
/// first records the old bytes (or a zero entry when they were all zero) in the undo record; new bytes
/// are buffered and only written after the undo record has been synced, one batch at a time. So at
/// any moment the target differs from its old version only in ranges the durable undo record covers.
/// Calls must come in increasing offset order (as a sequential scan produces them).
/// </summary>
public sealed class InPlacePatcher : IBlockSink
{
    private readonly IRandomAccessFile _target;
    private readonly UndoRecordWriter _undo;
    private readonly int _batchBytes;
    private readonly List<(long Offset, int Length, bool Zero)> _pending = [];
    private byte[] _batch;
    private int _batchUsed;
    private readonly byte[] _old = new byte[64 * 1024];
    private long _nextOffset;

    /// <param name="target">The file to change (its current content is the old version).</param>
    /// <param name="undo">Receives the old bytes.</param>
    /// <param name="batchBytes">How many new bytes to buffer between undo syncs.</param>
    /// <param name="beforeTargetWrite">Test hook run after the undo sync, before each batch is written.</param>
    public InPlacePatcher(IRandomAccessFile target, UndoRecordWriter undo, int batchBytes = 32 << 20, Action? beforeTargetWrite = null)
    {
        _target = target;
        _undo = undo;
        _batchBytes = batchBytes;
        _batch = [];
        OldLength = undo.TargetLength;
        BeforeTargetWrite = beforeTargetWrite;
    }

    public long OldLength { get; }
    public long BytesChanged { get; private set; }
    public Action? BeforeTargetWrite { get; set; }

    /// <summary>Replaces [offset, offset+data.Length) with <paramref name="data"/>.</summary>
    public void Write(long offset, ReadOnlySpan<byte> data)
    {
        CheckOrder(offset, data.Length);
        Capture(offset, data.Length);
        if (_batchUsed + data.Length > _batch.Length)
        {
            if (_batchUsed > 0)
            {
                FlushBatch();
            }
            if (data.Length > _batch.Length)
            {
                // One buffer for the whole update (pages are only touched as they fill).
                _batch = new byte[Math.Max(_batchBytes, data.Length)];
            }
        }
        data.CopyTo(_batch.AsSpan(_batchUsed));
        _batchUsed += data.Length;
        _pending.Add((offset, data.Length, false));
        BytesChanged += data.Length;
    }

    /// <summary>Makes [offset, offset+length) zero (a hole).</summary>
    public void WriteZeros(long offset, long length)
    {
        while (length > 0)
        {
            var n = (int)Math.Min(length, 1 << 20);
            CheckOrder(offset, n);
            Capture(offset, n);
            _pending.Add((offset, n, true));
            BytesChanged += n;
            offset += n;
            length -= n;
        }
    }

    /// <summary>Captures the tail beyond <paramref name="newLength"/> if the file shrinks, writes the last batch, sets the length.</summary>
    public void Complete(long newLength)
    {
        if (newLength < OldLength)
        {
            var from = Math.Max(newLength, _nextOffset);
            for (var o = from; o < OldLength; o += 1 << 20)
            {
                Capture(o, (int)Math.Min(1 << 20, OldLength - o));
            }
        }
        FlushBatch();
        _target.SetLength(newLength);
    }

    private void CheckOrder(long offset, int length)
    {
        if (offset < _nextOffset)
        {
            throw new InvalidOperationException($"in-place writes must come in increasing order: {offset} after {_nextOffset}");
        }
        _nextOffset = offset + length;
    }

    private void Capture(long offset, int length)
    {
        var oldEnd = Math.Min(offset + length, OldLength);
        if (offset >= oldEnd)
        {
            return;
        }
        var remaining = (int)(oldEnd - offset);
        var pos = offset;
        while (remaining > 0)
        {
            var n = Math.Min(remaining, _old.Length);
            var span = _old.AsSpan(0, n);
            var read = _target.Read(pos, span);
            span[read..].Clear();
            if (BlockHasher.IsZero(span))
            {
                _undo.AddZero(pos, n);
            }
            else
            {
                _undo.AddData(pos, span);
            }
            pos += n;
            remaining -= n;
        }
    }

    private void FlushBatch()
    {
        if (_pending.Count == 0)
        {
            return;
        }
        // The rule this class exists for: the undo record is durable before the target changes.
        _undo.Sync();
        BeforeTargetWrite?.Invoke();
        var used = 0;
        foreach (var (offset, length, zero) in _pending)
        {
            if (zero)
            {
                _target.Zero(offset, length);
            }
            else
            {
                _target.Write(offset, _batch.AsSpan(used, length));
                used += length;
            }
        }
        _pending.Clear();
        _batchUsed = 0;
    }
}
