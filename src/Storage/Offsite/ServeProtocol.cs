using System.Buffers.Binary;
using System.Text;
using Backupd.Storage.Repository;

namespace Backupd.Storage.Offsite;

/// <summary>
/// The `backupd serve` wire format (docs/repository-format.md, "Serve protocol"): frames of
/// <c>length (u32, big-endian, of what follows) | code (u8) | payload</c>, a request's code being its operation and a
/// response's its status. One request, one response, in order. Integers are big-endian, read and written with
/// BinaryPrimitives only at buffer boundaries; a frame longer than <see cref="MaxFrame"/> ends the connection.
/// </summary>
public static class ServeProtocol
{
    public const int Version = 2; // 2: chunks stored in packs, compact (17)
    public const int MaxFrame = 64 << 20;

    public enum Op : byte
    {
        Hello = 1,
        ReadConfig = 2,
        CreateConfig = 3,
        Missing = 4,
        PutChunks = 5,
        GetChunks = 6,
        IndexBegin = 7,
        IndexData = 8,
        IndexCommit = 9,
        IndexAbort = 10,
        List = 11,
        IndexRead = 12,
        Delete = 13,
        Collect = 14,
        ListChunks = 15,
        DeleteChunks = 16,
        Compact = 17,
    }

    public enum Status : byte
    {
        Ok = 0,
        Failed = 1,
        Refused = 2,
        Damaged = 3,
        NotFound = 4,
    }

    public static void WriteFrame(Stream output, byte code, ReadOnlySpan<byte> payload)
    {
        if (payload.Length + 1 > MaxFrame)
        {
            throw new ArgumentException($"a frame is at most {MaxFrame} bytes, this one {payload.Length + 1}", nameof(payload));
        }
        Span<byte> header = stackalloc byte[5];
        BinaryPrimitives.WriteInt32BigEndian(header, payload.Length + 1);
        header[4] = code;
        output.Write(header);
        output.Write(payload);
        output.Flush();
    }

    /// <summary>A frame's header alone, for a payload the caller writes itself (in pieces, without copying them together).</summary>
    public static void WriteFrameHeader(Stream output, byte code, int payloadLength)
    {
        if (payloadLength + 1 > MaxFrame)
        {
            throw new ArgumentException($"a frame is at most {MaxFrame} bytes, this one {payloadLength + 1}", nameof(payloadLength));
        }
        Span<byte> header = stackalloc byte[5];
        BinaryPrimitives.WriteInt32BigEndian(header, payloadLength + 1);
        header[4] = code;
        output.Write(header);
    }

    /// <summary>The next frame, or null at a clean end of the stream (between frames).</summary>
    public static (byte Code, byte[] Payload)? ReadFrame(Stream input, string peer)
    {
        if (ReadHeader(input, peer, out var code) is not { } length)
        {
            return null;
        }
        var payload = new byte[length];
        ReadPayload(input, payload, peer);
        return (code, payload);
    }

    /// <summary>
    /// As <see cref="ReadFrame"/>, into an array rented from <paramref name="pool"/> (the caller returns it; the
    /// payload is its first Length bytes): a server takes batch after batch of about 8 MiB, and a fresh array for
    /// each cost it page faults and zeroing of every byte before the read overwrote it.
    /// </summary>
    public static (byte Code, byte[] Buffer, int Length)? ReadPooledFrame(Stream input, string peer, System.Buffers.ArrayPool<byte> pool)
    {
        if (ReadHeader(input, peer, out var code) is not { } length)
        {
            return null;
        }
        var buffer = pool.Rent(length);
        try
        {
            ReadPayload(input, buffer.AsSpan(0, length), peer);
        }
        catch
        {
            pool.Return(buffer);
            throw;
        }
        return (code, buffer, length);
    }

    /// <summary>The payload length of the next frame, or null at a clean end of the stream (between frames).</summary>
    private static int? ReadHeader(Stream input, string peer, out byte code)
    {
        Span<byte> header = stackalloc byte[5];
        var got = ReadAtMost(input, header);
        code = header[4];
        if (got == 0)
        {
            return null;
        }
        if (got < header.Length)
        {
            throw new EndOfStreamException($"{peer} closed the connection in the middle of a frame");
        }
        var length = BinaryPrimitives.ReadInt32BigEndian(header);
        if (length is < 1 or > MaxFrame)
        {
            throw new InvalidDataException($"{peer} sent a frame of {length} bytes (1 to {MaxFrame} expected): not the backupd serve protocol (is something printing on the remote shell's stdout?)");
        }
        return length - 1;
    }

    private static void ReadPayload(Stream input, Span<byte> payload, string peer)
    {
        if (ReadAtMost(input, payload) < payload.Length)
        {
            throw new EndOfStreamException($"{peer} closed the connection in the middle of a frame");
        }
    }

    private static int ReadAtMost(Stream input, Span<byte> buffer) => input.ReadAtLeast(buffer, buffer.Length, throwOnEndOfStream: false);

    /// <summary>A name on the wire: u8 length, UTF-8.</summary>
    public static void WriteName(BinaryBuilder b, string name)
    {
        var bytes = Encoding.UTF8.GetBytes(name);
        if (bytes.Length > byte.MaxValue)
        {
            throw new ArgumentException($"name of {bytes.Length} bytes is too long for the protocol", nameof(name));
        }
        b.U8((byte)bytes.Length).Bytes(bytes);
    }

    public static string ReadName(ref BinaryCursor c) => Encoding.UTF8.GetString(c.Bytes(c.U8()));

    public static byte[] Ids(IReadOnlyList<ChunkId> ids)
    {
        var bytes = new byte[ids.Count * ChunkId.Length];
        for (var i = 0; i < ids.Count; i++)
        {
            ids[i].Write(bytes.AsSpan(i * ChunkId.Length));
        }
        return bytes;
    }

    public static List<ChunkId> ReadIds(ReadOnlySpan<byte> bytes)
    {
        if (bytes.Length % ChunkId.Length != 0)
        {
            throw new InvalidDataException($"a list of chunk ids of {bytes.Length} bytes (a multiple of {ChunkId.Length} expected)");
        }
        var ids = new List<ChunkId>(bytes.Length / ChunkId.Length);
        for (var i = 0; i < bytes.Length; i += ChunkId.Length)
        {
            ids.Add(ChunkId.Read(bytes[i..]));
        }
        return ids;
    }

    public static Status StatusFor(Exception e) => e switch
    {
        ChunkStoreRefusedException => Status.Refused,
        RestorePointNotFoundException or FileNotFoundException => Status.NotFound,
        RepositoryCorruptException => Status.Damaged,
        _ => Status.Failed,
    };

    /// <summary>The exception a failure status stands for on the client, with the server's message.</summary>
    public static Exception ExceptionFor(Status status, string message) => status switch
    {
        Status.Refused => new ChunkStoreRefusedException(message),
        Status.NotFound => new RestorePointNotFoundException(message),
        Status.Damaged => new RepositoryCorruptException(message),
        _ => new RepositoryException(message),
    };
}

/// <summary>Builds a payload: big-endian integers and byte runs appended to a growing buffer.</summary>
public sealed class BinaryBuilder
{
    private readonly System.Buffers.ArrayBufferWriter<byte> _buffer = new();

    public BinaryBuilder U8(byte v)
    {
        _buffer.GetSpan(1)[0] = v;
        _buffer.Advance(1);
        return this;
    }

    public BinaryBuilder U32(uint v)
    {
        BinaryPrimitives.WriteUInt32BigEndian(_buffer.GetSpan(4), v);
        _buffer.Advance(4);
        return this;
    }

    public BinaryBuilder I64(long v)
    {
        BinaryPrimitives.WriteInt64BigEndian(_buffer.GetSpan(8), v);
        _buffer.Advance(8);
        return this;
    }

    public BinaryBuilder Bytes(ReadOnlySpan<byte> v)
    {
        v.CopyTo(_buffer.GetSpan(v.Length));
        _buffer.Advance(v.Length);
        return this;
    }

    public ReadOnlySpan<byte> Span => _buffer.WrittenSpan;
}

/// <summary>Reads a payload front to back; running past its end is malformed input, not a crash.</summary>
public ref struct BinaryCursor(ReadOnlySpan<byte> data)
{
    private readonly int _length = data.Length;
    private ReadOnlySpan<byte> _rest = data;

    public readonly bool AtEnd => _rest.IsEmpty;

    /// <summary>Bytes consumed so far: where the next read starts in the data.</summary>
    public readonly int Position => _length - _rest.Length;

    public byte U8() => Take(1)[0];

    public uint U32() => BinaryPrimitives.ReadUInt32BigEndian(Take(4));

    public long I64() => BinaryPrimitives.ReadInt64BigEndian(Take(8));

    public ReadOnlySpan<byte> Bytes(long n) => n <= _rest.Length ? Take((int)n) : throw Short(n);

    public ReadOnlySpan<byte> Rest()
    {
        var r = _rest;
        _rest = [];
        return r;
    }

    private ReadOnlySpan<byte> Take(int n)
    {
        if (n > _rest.Length)
        {
            throw Short(n);
        }
        var r = _rest[..n];
        _rest = _rest[n..];
        return r;
    }

    private readonly InvalidDataException Short(long n) => new($"payload ends early ({n} bytes wanted, {_rest.Length} left)");
}
