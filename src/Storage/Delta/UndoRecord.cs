using System.Buffers.Binary;
using System.IO.Hashing;
using ZstdSharp;

namespace Backupd.Storage.Delta;

public enum UndoEntryKind : byte
{
    Data = 1,
    Zero = 2,

    /// <summary>Version 2 only: data stored zstd-compressed (readers hand out the decompressed bytes as <see cref="Data"/>).</summary>
    CompressedData = 3,
}

/// <summary>One range of an undo record. <see cref="Data"/> is valid until the reader's next read.</summary>
public readonly record struct UndoEntry(UndoEntryKind Kind, long Offset, int Length, ReadOnlyMemory<byte> Data)
{
    public long End => Offset + Length;
}

/// <summary>
/// Undo record: the old bytes of every range an update overwrote, so the update can be reversed.
/// Header field: targetLength i64 (the file's length before the update).
/// Body: entries in increasing, non-overlapping offset order:
/// kind u8 (1 data, 2 zero, 3 compressed data) | offset i64 | length u32 | data[length] (kind 1) or
/// compressedLength u32 | zstd frame[compressedLength] (kind 3) | xxh3(entry as stored) u64;
/// then 0xFF and the trailer. Each entry carries its own checksum (over the stored, i.e. compressed, bytes:
/// damage is found before anything is decompressed) so that recovery after a crash can use every complete
/// entry of a record whose end was never written. Version 2 (written since issue 15 item 4) adds kind 3;
/// version 1 records (kinds 1 and 2 only) are still read. A data entry is stored compressed only when that
/// is smaller; its frame must decompress to exactly length bytes.
/// </summary>
public static class UndoRecord
{
    public static ReadOnlySpan<byte> Magic => "BKDUNDO\0"u8;
    public const ushort Version = 2;

    /// <summary>The first version: no compressed entries. Still read; written only when compression is off.</summary>
    public const ushort UncompressedVersion = 1;
    public const int MaxEntryLength = 4 << 20;
    internal const byte EndMarker = 0xFF;

    /// <summary>Level 1, the fastest: the undo record is written on a backup's critical path, before the mirror changes.</summary>
    internal const int CompressionLevel = 1;

    /// <summary>Reads the whole record and checks every checksum; returns its target length.</summary>
    public static long Verify(Stream record)
    {
        using var reader = new UndoRecordReader(record);
        while (reader.TryRead(out _))
        {
        }
        return reader.TargetLength;
    }

    /// <summary>
    /// Reverses the update on <paramref name="target"/>: writes every entry, then sets the old length.
    /// With <paramref name="tolerateTruncation"/> (crash recovery) a record cut short is applied up to its
    /// last complete entry. Entries are written as they are read: verify first if a damaged record must
    /// leave the target untouched.
    /// </summary>
    public static void Apply(Stream record, IRandomAccessFile target, bool tolerateTruncation = false)
    {
        using var reader = new UndoRecordReader(record, tolerateTruncation);
        if (target.Length < reader.TargetLength)
        {
            target.SetLength(reader.TargetLength);
        }
        while (reader.TryRead(out var e))
        {
            if (e.Kind == UndoEntryKind.Data)
            {
                target.Write(e.Offset, e.Data.Span);
            }
            else
            {
                target.Zero(e.Offset, e.Length);
            }
        }
        target.SetLength(reader.TargetLength);
    }

    /// <summary>
    /// Merges two consecutive undo records into one: <paramref name="newer"/> turns version N+1 into N,
    /// <paramref name="older"/> turns N into N-1; the result turns N+1 into N-1 (ranges union, older bytes win).
    /// Streams: both inputs are read once, in offset order.
    /// </summary>
    public static void Merge(Stream newer, Stream older, Stream output)
    {
        using var n = new UndoRecordReader(newer);
        using var o = new UndoRecordReader(older);
        var writer = new UndoRecordWriter(output, o.TargetLength);
        var hasN = n.TryRead(out var ne);
        var hasO = o.TryRead(out var oe);
        long nCut = 0; // part of the current newer entry already consumed or shadowed
        while (hasN || hasO)
        {
            if (hasN && nCut < ne.Offset)
            {
                nCut = ne.Offset;
            }
            if (hasN && nCut >= ne.End)
            {
                hasN = n.TryRead(out ne);
                continue;
            }
            if (hasO && (!hasN || oe.Offset <= nCut))
            {
                // The older entry wins wherever it lies.
                WriteEntry(writer, oe, oe.Offset, oe.Length);
                if (hasN)
                {
                    nCut = Math.Max(nCut, oe.End);
                }
                hasO = o.TryRead(out oe);
                continue;
            }
            // A newer entry's part before the next older entry (or to its end).
            var stop = hasO ? Math.Min(ne.End, oe.Offset) : ne.End;
            // Bytes at or beyond the older version's length do not exist there.
            stop = Math.Min(stop, o.TargetLength);
            if (stop > nCut)
            {
                WriteEntry(writer, ne, nCut, (int)(stop - nCut));
            }
            nCut = hasO ? Math.Min(ne.End, oe.Offset) : ne.End;
            if (nCut >= ne.End)
            {
                hasN = n.TryRead(out ne);
            }
        }
        writer.Complete();
    }

    private static void WriteEntry(UndoRecordWriter writer, UndoEntry e, long from, int length)
    {
        if (e.Kind == UndoEntryKind.Zero)
        {
            writer.AddZero(from, length);
        }
        else
        {
            writer.AddData(from, e.Data.Span.Slice((int)(from - e.Offset), length));
        }
    }
}

/// <summary>Writes an undo record. Entries must come in increasing, non-overlapping offset order.</summary>
public sealed class UndoRecordWriter
{
    // One compressor per thread for the process: a writer lives for one backup, a compressor's tables are reused.
    private static readonly ThreadLocal<Compressor> Compressors = new(() => new Compressor(UndoRecord.CompressionLevel));
    private readonly HashingWriter _body;
    private readonly Action? _sync;
    private readonly bool _compress;
    private byte[] _packed = [];
    private long _nextOffset;
    private bool _completed;

    /// <param name="output">Where the record goes.</param>
    /// <param name="targetLength">The file's length before the update (what undo restores).</param>
    /// <param name="sync">Makes the output durable (fsync); called by <see cref="Sync"/>.</param>
    /// <param name="compress">False writes a version 1 record (no compressed entries), as releases before version 2 did.</param>
    public UndoRecordWriter(Stream output, long targetLength, Action? sync = null, bool compress = true)
    {
        _sync = sync;
        _compress = compress;
        TargetLength = targetLength;
        var fields = new byte[8];
        BinaryPrimitives.WriteInt64LittleEndian(fields, targetLength);
        FormatIO.WriteHeader(output, UndoRecord.Magic, compress ? UndoRecord.Version : UndoRecord.UncompressedVersion, fields);
        HeaderLength = 16 + fields.Length + 8;
        _body = new HashingWriter(output);
    }

    public long TargetLength { get; }
    public int HeaderLength { get; }
    /// <summary>Bytes of the record so far (after <see cref="Complete"/>: its size, trailer included).</summary>
    public long BytesWritten => HeaderLength + _body.Length + (_completed ? TrailerLength : 0);

    private const int TrailerLength = 24;

    /// <summary>What the record would hold with every data entry stored uncompressed (a version 1 record of the same entries).</summary>
    public long UncompressedBytes => BytesWritten + _saved;

    /// <summary>Old bytes recorded in data entries (before compression).</summary>
    public long DataBytes { get; private set; }
    public long Entries { get; private set; }
    private long _saved;

    /// <summary>Records old bytes.</summary>
    public void AddData(long offset, ReadOnlySpan<byte> oldBytes)
    {
        while (!oldBytes.IsEmpty)
        {
            var n = Math.Min(oldBytes.Length, UndoRecord.MaxEntryLength);
            var chunk = oldBytes[..n];
            if (_compress && TryCompress(chunk, out var packed))
            {
                AddEntry(UndoEntryKind.CompressedData, offset, packed, n);
                _saved += n - packed.Length;
            }
            else
            {
                AddEntry(UndoEntryKind.Data, offset, chunk, n);
            }
            offset += n;
            oldBytes = oldBytes[n..];
            DataBytes += n;
        }
    }

    /// <summary>compressedLength u32 + zstd frame into <paramref name="packed"/>, when that is smaller than the bytes themselves.</summary>
    private bool TryCompress(ReadOnlySpan<byte> data, out ReadOnlySpan<byte> packed)
    {
        var bound = 4 + Compressor.GetCompressBound(data.Length);
        if (_packed.Length < bound)
        {
            _packed = new byte[bound];
        }
        var n = Compressors.Value!.Wrap(data, _packed.AsSpan(4));
        BinaryPrimitives.WriteUInt32LittleEndian(_packed, (uint)n);
        packed = _packed.AsSpan(0, 4 + n);
        return 4 + n < data.Length;
    }

    public void AddZero(long offset, long length)
    {
        while (length > 0)
        {
            var n = (int)Math.Min(length, UndoRecord.MaxEntryLength);
            AddEntry(UndoEntryKind.Zero, offset, default, n);
            offset += n;
            length -= n;
        }
    }

    private void AddEntry(UndoEntryKind kind, long offset, ReadOnlySpan<byte> data, int length)
    {
        if (_completed)
        {
            throw new InvalidOperationException("undo record already completed");
        }
        if (offset < _nextOffset)
        {
            throw new InvalidOperationException($"undo entries out of order: {offset} after {_nextOffset}");
        }
        Span<byte> head = stackalloc byte[13];
        head[0] = (byte)kind;
        BinaryPrimitives.WriteInt64LittleEndian(head[1..], offset);
        BinaryPrimitives.WriteUInt32LittleEndian(head[9..], (uint)length);
        var check = new XxHash3();
        check.Append(head);
        check.Append(data);
        _body.Write(head);
        _body.Write(data);
        Span<byte> tail = stackalloc byte[8];
        BinaryPrimitives.WriteUInt64LittleEndian(tail, check.GetCurrentHashAsUInt64());
        _body.Write(tail);
        _nextOffset = offset + length;
        Entries++;
    }

    /// <summary>Flushes and makes everything written so far durable (before the target is changed).</summary>
    public void Sync()
    {
        _body.Output.Flush();
        _sync?.Invoke();
    }

    public void Complete()
    {
        _body.WriteByte(UndoRecord.EndMarker);
        _body.WriteTrailer();
        _completed = true;
        Sync();
    }
}

/// <summary>Reads an undo record entry by entry, checking each entry and (at the end) the trailer.</summary>
public sealed class UndoRecordReader : IDisposable
{
    private const string What = "undo record";
    private static readonly ThreadLocal<Decompressor> Decompressors = new(() => new Decompressor());
    private readonly HashingReader _body;
    private readonly bool _tolerant;
    private readonly ushort _version;
    private byte[] _buffer = [];
    private byte[] _packed = [];
    private long _nextOffset;
    private bool _done;

    public UndoRecordReader(Stream record, bool tolerateTruncation = false)
    {
        _tolerant = tolerateTruncation;
        var fields = FormatIO.ReadHeader(record, What, UndoRecord.Magic, [UndoRecord.UncompressedVersion, UndoRecord.Version], out _version);
        if (fields.Length < 8)
        {
            throw new CorruptDataException(What, 16, "header fields too short");
        }
        TargetLength = BinaryPrimitives.ReadInt64LittleEndian(fields);
        if (TargetLength < 0)
        {
            throw new CorruptDataException(What, 16, $"negative target length {TargetLength}");
        }
        _body = new HashingReader(record, What, 16 + fields.Length + 8);
    }

    public long TargetLength { get; }

    /// <summary>The record's format version (1: no compressed entries, 2: zstd-compressed data entries allowed).</summary>
    public ushort Version => _version;

    /// <summary>True when the record ended properly (end marker and trailer checked).</summary>
    public bool Complete { get; private set; }

    public bool TryRead(out UndoEntry entry)
    {
        entry = default;
        if (_done)
        {
            return false;
        }
        try
        {
            return ReadOne(out entry);
        }
        catch (CorruptDataException) when (_tolerant)
        {
            _done = true;
            return false;
        }
    }

    private bool ReadOne(out UndoEntry entry)
    {
        entry = default;
        var at = _body.AbsolutePosition;
        var kind = _body.ReadByte("entry kind");
        if (kind == UndoRecord.EndMarker)
        {
            _body.CheckTrailer();
            _done = true;
            Complete = true;
            return false;
        }
        if (kind is not ((byte)UndoEntryKind.Data or (byte)UndoEntryKind.Zero) && !(kind == (byte)UndoEntryKind.CompressedData && _version >= UndoRecord.Version))
        {
            throw new CorruptDataException(What, at, $"unknown entry kind {kind}");
        }
        Span<byte> head = stackalloc byte[13];
        head[0] = kind;
        _body.Read(head[1..], "entry header");
        var offset = BinaryPrimitives.ReadInt64LittleEndian(head[1..]);
        var length = BinaryPrimitives.ReadUInt32LittleEndian(head[9..]);
        if (length == 0 || length > UndoRecord.MaxEntryLength || offset < _nextOffset || offset + length > TargetLength)
        {
            throw new CorruptDataException(What, at, $"entry [{offset}, +{length}) is out of order or outside [{_nextOffset}, {TargetLength})");
        }
        var check = new XxHash3();
        check.Append(head);
        var data = ReadOnlyMemory<byte>.Empty;
        if (kind == (byte)UndoEntryKind.Data)
        {
            if (_buffer.Length < length)
            {
                _buffer = new byte[Math.Max(length, Math.Min(_buffer.Length * 2, UndoRecord.MaxEntryLength))];
            }
            _body.Read(_buffer.AsSpan(0, (int)length), "entry data");
            check.Append(_buffer.AsSpan(0, (int)length));
            data = _buffer.AsMemory(0, (int)length);
        }
        var packed = kind == (byte)UndoEntryKind.CompressedData ? ReadPacked(at, length, check) : default;
        Span<byte> tail = stackalloc byte[8];
        _body.Read(tail, "entry checksum");
        if (BinaryPrimitives.ReadUInt64LittleEndian(tail) != check.GetCurrentHashAsUInt64())
        {
            throw new CorruptDataException(What, at, $"checksum mismatch in the entry for file range [{offset}, +{length})");
        }
        if (kind == (byte)UndoEntryKind.CompressedData)
        {
            data = Unpack(at, offset, (int)length, packed.Span);
            kind = (byte)UndoEntryKind.Data; // callers see the old bytes, however they were stored
        }
        _nextOffset = offset + length;
        entry = new UndoEntry((UndoEntryKind)kind, offset, (int)length, data);
        return true;
    }

    /// <summary>Reads a compressed entry's length and frame (checksummed with the entry, decompressed only after the checksum matched).</summary>
    private ReadOnlyMemory<byte> ReadPacked(long at, uint length, XxHash3 check)
    {
        Span<byte> size = stackalloc byte[4];
        _body.Read(size, "compressed length");
        check.Append(size);
        var packedLength = BinaryPrimitives.ReadUInt32LittleEndian(size);
        if (packedLength == 0 || packedLength + 4 >= length)
        {
            // The writer compresses only when that saves bytes: anything else is damage (and bounds the buffer).
            throw new CorruptDataException(What, at, $"compressed length {packedLength} for {length} bytes is not smaller than the data");
        }
        if (_packed.Length < packedLength)
        {
            _packed = new byte[Math.Max(packedLength, Math.Min(_packed.Length * 2, UndoRecord.MaxEntryLength))];
        }
        _body.Read(_packed.AsSpan(0, (int)packedLength), "compressed entry data");
        check.Append(_packed.AsSpan(0, (int)packedLength));
        return _packed.AsMemory(0, (int)packedLength);
    }

    private ReadOnlyMemory<byte> Unpack(long at, long offset, int length, ReadOnlySpan<byte> packed)
    {
        if (_buffer.Length < length)
        {
            _buffer = new byte[Math.Max(length, Math.Min(_buffer.Length * 2, UndoRecord.MaxEntryLength))];
        }
        int n;
        try
        {
            n = Decompressors.Value!.Unwrap(packed, _buffer.AsSpan(0, length));
        }
        catch (ZstdException e)
        {
            throw new CorruptDataException(What, at, $"the compressed entry for file range [{offset}, +{length}) does not decompress ({e.Message})");
        }
        if (n != length)
        {
            throw new CorruptDataException(What, at, $"the compressed entry for file range [{offset}, +{length}) decompresses to {n} bytes");
        }
        return _buffer.AsMemory(0, length);
    }

    public void Dispose()
    {
    }
}
