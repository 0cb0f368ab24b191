using System.Buffers.Binary;

namespace Backupd.Storage.Delta;

/// <summary>
/// Delta file, format version 1. Header fields: blockSize u32 | baseLength i64.
/// Body: ops in increasing, contiguous target order:
/// 1 Copy: target i64 | length i64 | source i64;  2 Literal: target i64 | length u32 | data;
/// 3 Zero: target i64 | length i64;  0xFF End: newLength i64; then the trailer.
/// </summary>
public static class DeltaFormat
{
    public static ReadOnlySpan<byte> Magic => "BKDDELTA"u8;
    public const ushort Version = 1;
    internal const string What = "delta";
    internal const byte EndOp = 0xFF;

    /// <summary>Reads the whole delta and checks its structure and checksums; returns (baseLength, newLength).</summary>
    public static (long BaseLength, long NewLength) Verify(Stream delta)
    {
        var reader = new DeltaReader(delta);
        while (reader.TryRead(out _))
        {
        }
        return (reader.BaseLength, reader.NewLength);
    }
}

/// <summary>An <see cref="IDeltaSink"/> that serializes ops.</summary>
public sealed class DeltaWriter : IDeltaSink
{
    private readonly HashingWriter _body;

    public DeltaWriter(Stream output, int blockSize, long baseLength)
    {
        var fields = new byte[12];
        BinaryPrimitives.WriteUInt32LittleEndian(fields, (uint)blockSize);
        BinaryPrimitives.WriteInt64LittleEndian(fields.AsSpan(4), baseLength);
        FormatIO.WriteHeader(output, DeltaFormat.Magic, DeltaFormat.Version, fields);
        _body = new HashingWriter(output);
    }

    public long LiteralBytes { get; private set; }

    public void Add(in DeltaOp op)
    {
        _body.WriteByte((byte)op.Kind);
        _body.WriteInt64(op.TargetOffset);
        switch (op.Kind)
        {
            case DeltaOpKind.Copy:
                _body.WriteInt64(op.Length);
                _body.WriteInt64(op.SourceOffset);
                break;
            case DeltaOpKind.Literal:
                _body.WriteUInt32((uint)op.Length);
                _body.Write(op.Data.Span);
                LiteralBytes += op.Length;
                break;
            case DeltaOpKind.Zero:
                _body.WriteInt64(op.Length);
                break;
            default:
                throw new ArgumentOutOfRangeException(nameof(op), op.Kind, "unknown op");
        }
    }

    public void Finish(long newLength)
    {
        _body.WriteByte(DeltaFormat.EndOp);
        _body.WriteInt64(newLength);
        _body.WriteTrailer();
        _body.Output.Flush();
    }
}

/// <summary>Reads ops back, checking order, coverage, bounds and (at the end) the trailer checksum.</summary>
public sealed class DeltaReader
{
    private const int MaxLiteral = 4 << 20;
    private readonly HashingReader _body;
    private byte[] _buffer = [];
    private long _next;
    private bool _done;

    public DeltaReader(Stream delta)
    {
        var fields = FormatIO.ReadHeader(delta, DeltaFormat.What, DeltaFormat.Magic, DeltaFormat.Version);
        if (fields.Length < 12)
        {
            throw new CorruptDataException(DeltaFormat.What, 16, "header fields too short");
        }
        BlockSize = (int)BinaryPrimitives.ReadUInt32LittleEndian(fields);
        BaseLength = BinaryPrimitives.ReadInt64LittleEndian(fields.AsSpan(4));
        if (BaseLength < 0)
        {
            throw new CorruptDataException(DeltaFormat.What, 20, $"negative base length {BaseLength}");
        }
        _body = new HashingReader(delta, DeltaFormat.What, 16 + fields.Length + 8);
    }

    public int BlockSize { get; }
    public long BaseLength { get; }

    /// <summary>Known after the last op was read.</summary>
    public long NewLength { get; private set; } = -1;

    public bool TryRead(out DeltaOp op)
    {
        op = default;
        if (_done)
        {
            return false;
        }
        var at = _body.AbsolutePosition;
        var kind = _body.ReadByte("op kind");
        if (kind == DeltaFormat.EndOp)
        {
            NewLength = _body.ReadInt64("new length");
            if (NewLength != _next)
            {
                throw new CorruptDataException(DeltaFormat.What, at, $"ops cover {_next} bytes but the new length is {NewLength}");
            }
            _body.CheckTrailer();
            _done = true;
            return false;
        }
        var target = _body.ReadInt64("op target");
        if (target != _next)
        {
            throw new CorruptDataException(DeltaFormat.What, at, $"op starts at {target}, expected {_next} (ops must be contiguous)");
        }
        switch ((DeltaOpKind)kind)
        {
            case DeltaOpKind.Copy:
                {
                    var length = _body.ReadInt64("copy length");
                    var source = _body.ReadInt64("copy source");
                    if (length <= 0 || source < 0 || source + length > BaseLength)
                    {
                        throw new CorruptDataException(DeltaFormat.What, at, $"copy of [{source}, +{length}) is outside the base file of {BaseLength} bytes");
                    }
                    op = new DeltaOp(DeltaOpKind.Copy, target, length, source, default);
                    break;
                }
            case DeltaOpKind.Literal:
                {
                    var length = (int)_body.ReadUInt32("literal length");
                    if (length <= 0 || length > MaxLiteral)
                    {
                        throw new CorruptDataException(DeltaFormat.What, at, $"literal length {length} outside 1..{MaxLiteral}");
                    }
                    if (_buffer.Length < length)
                    {
                        _buffer = new byte[length];
                    }
                    _body.Read(_buffer.AsSpan(0, length), "literal data");
                    op = new DeltaOp(DeltaOpKind.Literal, target, length, 0, _buffer.AsMemory(0, length));
                    break;
                }
            case DeltaOpKind.Zero:
                {
                    var length = _body.ReadInt64("zero length");
                    if (length <= 0)
                    {
                        throw new CorruptDataException(DeltaFormat.What, at, $"zero run length {length}");
                    }
                    op = new DeltaOp(DeltaOpKind.Zero, target, length, 0, default);
                    break;
                }
            default:
                throw new CorruptDataException(DeltaFormat.What, at, $"unknown op kind {kind}");
        }
        _next = target + op.Length;
        return true;
    }
}

/// <summary>Applies a delta: to a new file, or in place on the old one while capturing an undo record.</summary>
public static class DeltaApplier
{
    /// <summary>
    /// Writes the new file to <paramref name="output"/> from the old file <paramref name="baseFile"/> and the delta.
    /// The delta is verified completely first (it must be seekable), so a damaged delta writes nothing.
    /// Zero runs are skipped (holes) when the output can seek.
    /// </summary>
    public static void ApplyToNew(Stream delta, Stream baseFile, Stream output)
    {
        var start = delta.Position;
        DeltaFormat.Verify(delta);
        delta.Position = start;
        var reader = new DeltaReader(delta);
        var buffer = new byte[1 << 20];
        var zeros = new byte[64 * 1024];
        long written = 0;
        while (reader.TryRead(out var op))
        {
            switch (op.Kind)
            {
                case DeltaOpKind.Literal:
                    output.Write(op.Data.Span);
                    break;
                case DeltaOpKind.Copy:
                    baseFile.Position = op.SourceOffset;
                    for (var left = op.Length; left > 0;)
                    {
                        var n = (int)Math.Min(left, buffer.Length);
                        FormatIO.ReadExactly(baseFile, buffer.AsSpan(0, n), "base file", baseFile.Position, "copied range");
                        if (output.CanSeek && BlockHasher.IsZero(buffer.AsSpan(0, n)))
                        {
                            output.Seek(n, SeekOrigin.Current); // keep holes holes
                        }
                        else
                        {
                            output.Write(buffer, 0, n);
                        }
                        left -= n;
                    }
                    break;
                case DeltaOpKind.Zero:
                    if (output.CanSeek)
                    {
                        output.Seek(op.Length, SeekOrigin.Current);
                    }
                    else
                    {
                        for (var left = op.Length; left > 0; left -= Math.Min(left, zeros.Length))
                        {
                            output.Write(zeros, 0, (int)Math.Min(left, zeros.Length));
                        }
                    }
                    break;
            }
            written = op.TargetOffset + op.Length;
        }
        if (output.CanSeek)
        {
            output.SetLength(written);
        }
        output.Flush();
    }

    /// <summary>
    /// Changes <paramref name="target"/> (the old file) into the new file in place. Before any range is
    /// overwritten its old bytes go to <paramref name="undo"/> and are synced; Copy ops whose source was
    /// already overwritten read it back from the undo record (<paramref name="undoStream"/> must be readable).
    /// The delta is verified completely first (seekable), so a damaged delta changes nothing.
    /// </summary>
    public static long ApplyInPlace(Stream delta, IRandomAccessFile target, UndoRecordWriter undo, Stream? undoStream = null)
    {
        var start = delta.Position;
        DeltaFormat.Verify(delta);
        delta.Position = start;
        var reader = new DeltaReader(delta);
        if (reader.BaseLength != target.Length)
        {
            throw new CorruptDataException(DeltaFormat.What, 20, $"delta was made against a {reader.BaseLength}-byte file, the target has {target.Length} bytes");
        }
        var patcher = new InPlacePatcher(target, undo, undoStream);
        var buffer = new byte[1 << 20];
        while (reader.TryRead(out var op))
        {
            switch (op.Kind)
            {
                case DeltaOpKind.Literal:
                    patcher.Write(op.TargetOffset, op.Data.Span);
                    break;
                case DeltaOpKind.Zero:
                    patcher.WriteZeros(op.TargetOffset, op.Length);
                    break;
                case DeltaOpKind.Copy when op.IsUnchanged:
                    break;
                case DeltaOpKind.Copy:
                    for (long done = 0; done < op.Length;)
                    {
                        var n = (int)Math.Min(op.Length - done, buffer.Length);
                        patcher.ReadOld(op.SourceOffset + done, buffer.AsSpan(0, n));
                        patcher.Write(op.TargetOffset + done, buffer.AsSpan(0, n));
                        done += n;
                    }
                    break;
            }
        }
        patcher.Complete(reader.NewLength);
        undo.Complete();
        target.Flush();
        return patcher.BytesChanged;
    }
}
