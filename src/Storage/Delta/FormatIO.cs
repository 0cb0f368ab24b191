using System.Buffers.Binary;
using System.IO.Hashing;

namespace Backupd.Storage.Delta;

/// <summary>
/// The common envelope of every binary format (signature, delta, undo record):
/// <code>
/// header : magic[8] | version u16 | reserved u16 | fieldsLength u32 | fields[fieldsLength] | xxh3(header so far) u64
/// body   : format-specific records
/// trailer: "BKDEND\0\0" | bodyLength u64 | xxh3(body) u64
/// </code>
/// All integers little-endian. XXH3 here only detects accidents (bit rot, truncation); the
/// adversarial part (guest-crafted blocks) is handled by the keyed block hash.
/// </summary>
internal static class FormatIO
{
    public static ReadOnlySpan<byte> TrailerMagic => "BKDEND\0\0"u8;
    public const int MaxFieldsLength = 4096;

    public static void WriteHeader(Stream output, ReadOnlySpan<byte> magic, ushort version, ReadOnlySpan<byte> fields)
    {
        var header = new byte[16 + fields.Length + 8];
        magic.CopyTo(header);
        BinaryPrimitives.WriteUInt16LittleEndian(header.AsSpan(8), version);
        BinaryPrimitives.WriteUInt32LittleEndian(header.AsSpan(12), (uint)fields.Length);
        fields.CopyTo(header.AsSpan(16));
        BinaryPrimitives.WriteUInt64LittleEndian(header.AsSpan(16 + fields.Length), XxHash3.HashToUInt64(header.AsSpan(0, 16 + fields.Length)));
        output.Write(header);
    }

    /// <summary>Reads and checks a header; returns its fields. Throws <see cref="CorruptDataException"/>.</summary>
    public static byte[] ReadHeader(Stream input, string what, ReadOnlySpan<byte> magic, ushort version) =>
        ReadHeader(input, what, magic, [version], out _);

    /// <summary>Reads and checks a header of any of <paramref name="versions"/>; returns its fields and (in <paramref name="found"/>) its version.</summary>
    public static byte[] ReadHeader(Stream input, string what, ReadOnlySpan<byte> magic, ReadOnlySpan<ushort> versions, out ushort found)
    {
        Span<byte> fixedPart = stackalloc byte[16];
        ReadExactly(input, fixedPart, what, 0, "header");
        if (!fixedPart[..8].SequenceEqual(magic))
        {
            throw new CorruptDataException(what, 0, $"bad magic {Convert.ToHexString(fixedPart[..8])}, expected {Convert.ToHexString(magic)} (not a {what} file)");
        }
        var v = BinaryPrimitives.ReadUInt16LittleEndian(fixedPart[8..]);
        if (!versions.Contains(v))
        {
            throw new CorruptDataException(what, 8, $"format version {v} is not supported (this build reads version {string.Join(" and ", versions.ToArray())})");
        }
        found = v;
        var fieldsLength = BinaryPrimitives.ReadUInt32LittleEndian(fixedPart[12..]);
        if (fieldsLength > MaxFieldsLength)
        {
            throw new CorruptDataException(what, 12, $"header length {fieldsLength} exceeds {MaxFieldsLength}");
        }
        var rest = new byte[fieldsLength + 8];
        ReadExactly(input, rest, what, 16, "header");
        var hash = new XxHash3();
        hash.Append(fixedPart);
        hash.Append(rest.AsSpan(0, (int)fieldsLength));
        var expected = BinaryPrimitives.ReadUInt64LittleEndian(rest.AsSpan((int)fieldsLength));
        if (hash.GetCurrentHashAsUInt64() != expected)
        {
            throw new CorruptDataException(what, 16 + fieldsLength, "header checksum mismatch");
        }
        return rest.AsSpan(0, (int)fieldsLength).ToArray();
    }

    public static void WriteTrailer(Stream output, long bodyLength, ulong bodyHash)
    {
        Span<byte> t = stackalloc byte[24];
        TrailerMagic.CopyTo(t);
        BinaryPrimitives.WriteInt64LittleEndian(t[8..], bodyLength);
        BinaryPrimitives.WriteUInt64LittleEndian(t[16..], bodyHash);
        output.Write(t);
    }

    public static void ReadAndCheckTrailer(Stream input, string what, long offset, long bodyLength, ulong bodyHash)
    {
        Span<byte> t = stackalloc byte[24];
        ReadExactly(input, t, what, offset, "trailer");
        if (!t[..8].SequenceEqual(TrailerMagic))
        {
            throw new CorruptDataException(what, offset, "trailer missing (file truncated or damaged)");
        }
        if (BinaryPrimitives.ReadInt64LittleEndian(t[8..]) != bodyLength)
        {
            throw new CorruptDataException(what, offset + 8, $"body length {BinaryPrimitives.ReadInt64LittleEndian(t[8..])} recorded, {bodyLength} read");
        }
        if (BinaryPrimitives.ReadUInt64LittleEndian(t[16..]) != bodyHash)
        {
            throw new CorruptDataException(what, offset + 16, "body checksum mismatch");
        }
    }

    public static void ReadExactly(Stream input, Span<byte> buffer, string what, long offset, string part)
    {
        var total = 0;
        while (total < buffer.Length)
        {
            var n = input.Read(buffer[total..]);
            if (n == 0)
            {
                throw new CorruptDataException(what, offset + total, $"truncated in the {part}: {buffer.Length - total} more bytes expected");
            }
            total += n;
        }
    }
}

/// <summary>Writes a body while hashing it, so the trailer can be produced without re-reading.</summary>
internal sealed class HashingWriter(Stream output)
{
    private readonly XxHash3 _hash = new();
    public long Length { get; private set; }
    public Stream Output => output;

    public void Write(ReadOnlySpan<byte> data)
    {
        output.Write(data);
        _hash.Append(data);
        Length += data.Length;
    }

    public void WriteByte(byte b) => Write([b]);

    public void WriteUInt32(uint v)
    {
        Span<byte> b = stackalloc byte[4];
        BinaryPrimitives.WriteUInt32LittleEndian(b, v);
        Write(b);
    }

    public void WriteInt64(long v)
    {
        Span<byte> b = stackalloc byte[8];
        BinaryPrimitives.WriteInt64LittleEndian(b, v);
        Write(b);
    }

    public void WriteTrailer() => FormatIO.WriteTrailer(output, Length, _hash.GetCurrentHashAsUInt64());
}

/// <summary>Reads a body while hashing it; every read failure names the structure and offset.</summary>
internal sealed class HashingReader(Stream input, string what, long bodyStart)
{
    private readonly XxHash3 _hash = new();
    public long Position { get; private set; }
    public long AbsolutePosition => bodyStart + Position;

    public void Read(Span<byte> buffer, string part)
    {
        FormatIO.ReadExactly(input, buffer, what, AbsolutePosition, part);
        _hash.Append(buffer);
        Position += buffer.Length;
    }

    public byte ReadByte(string part)
    {
        Span<byte> b = stackalloc byte[1];
        Read(b, part);
        return b[0];
    }

    public uint ReadUInt32(string part)
    {
        Span<byte> b = stackalloc byte[4];
        Read(b, part);
        return BinaryPrimitives.ReadUInt32LittleEndian(b);
    }

    public long ReadInt64(string part)
    {
        Span<byte> b = stackalloc byte[8];
        Read(b, part);
        return BinaryPrimitives.ReadInt64LittleEndian(b);
    }

    public void CheckTrailer() => FormatIO.ReadAndCheckTrailer(input, what, AbsolutePosition, Position, _hash.GetCurrentHashAsUInt64());

    public CorruptDataException Error(string detail) => new(what, AbsolutePosition, detail);
}
