using System.Buffers.Binary;
using System.Security.Cryptography;
using System.Text;
using Backupd.Storage.Repository;

namespace Backupd.Storage.Offsite;

/// <summary>
/// An index file's encryption (docs/repository-format.md, "Index file"): <c>"BKI1"</c>, then segments of at most
/// 1 MiB of plaintext, each <c>length (u32, big-endian) | nonce (12) | tag (16) | AES-256-GCM(ciphertext)</c> with
/// the associated data <c>index name | segment number (u64) | last (u8)</c>. Segments cannot be reordered, moved to
/// another index or cut off (the last one says so), and an index of any size is written and read in bounded memory.
/// </summary>
internal static class SealedStream
{
    public const int SegmentBytes = 1 << 20;
    public const int NonceLength = 12;
    public const int TagLength = 16;
    public static ReadOnlySpan<byte> Magic => "BKI1"u8;

    public static byte[] AssociatedData(string name, long segment, bool last)
    {
        var nameBytes = Encoding.UTF8.GetBytes(name);
        var aad = new byte[nameBytes.Length + 9];
        nameBytes.CopyTo(aad, 0);
        BinaryPrimitives.WriteInt64BigEndian(aad.AsSpan(nameBytes.Length), segment);
        aad[^1] = last ? (byte)1 : (byte)0;
        return aad;
    }
}

/// <summary>Writes a sealed index to <paramref name="output"/>; <see cref="Complete"/> writes the last segment.</summary>
internal sealed class SealedWriter(Stream output, byte[] dataKey, string name) : Stream
{
    private readonly AesGcm _gcm = new(dataKey, SealedStream.TagLength);
    private readonly byte[] _buffer = new byte[SealedStream.SegmentBytes];
    private int _filled;
    private long _segment;
    private bool _started;

    public override void Write(ReadOnlySpan<byte> data)
    {
        while (data.Length > 0)
        {
            if (_filled == _buffer.Length)
            {
                Emit(last: false);
            }
            var n = Math.Min(data.Length, _buffer.Length - _filled);
            data[..n].CopyTo(_buffer.AsSpan(_filled));
            _filled += n;
            data = data[n..];
        }
    }

    public override void Write(byte[] buffer, int offset, int count) => Write(buffer.AsSpan(offset, count));

    /// <summary>Seals what is buffered as the last segment; nothing may be written after it.</summary>
    public void Complete() => Emit(last: true);

    private void Emit(bool last)
    {
        if (!_started)
        {
            output.Write(SealedStream.Magic);
            _started = true;
        }
        var header = new byte[4 + SealedStream.NonceLength + SealedStream.TagLength];
        var cipher = new byte[_filled];
        BinaryPrimitives.WriteInt32BigEndian(header, _filled);
        RandomNumberGenerator.Fill(header.AsSpan(4, SealedStream.NonceLength));
        _gcm.Encrypt(header.AsSpan(4, SealedStream.NonceLength), _buffer.AsSpan(0, _filled), cipher, header.AsSpan(4 + SealedStream.NonceLength), SealedStream.AssociatedData(name, _segment, last));
        output.Write(header);
        output.Write(cipher);
        _segment++;
        _filled = 0;
    }

    protected override void Dispose(bool disposing)
    {
        _gcm.Dispose();
        base.Dispose(disposing);
    }

    public override bool CanRead => false;
    public override bool CanSeek => false;
    public override bool CanWrite => true;
    public override long Length => throw new NotSupportedException();
    public override long Position { get => throw new NotSupportedException(); set => throw new NotSupportedException(); }
    public override void Flush() { }
    public override int Read(byte[] buffer, int offset, int count) => throw new NotSupportedException();
    public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();
    public override void SetLength(long value) => throw new NotSupportedException();
}

/// <summary>Reads a sealed index; any damage, reordering or truncation throws <see cref="RepositoryCorruptException"/> naming <paramref name="where"/>.</summary>
internal sealed class SealedReader(Stream input, byte[] dataKey, string name, string where) : Stream
{
    private readonly AesGcm _gcm = new(dataKey, SealedStream.TagLength);
    private byte[] _plain = [];
    private int _position;
    private long _segment;
    private bool _started;
    private bool _ended;

    public override int Read(Span<byte> destination)
    {
        while (_position == _plain.Length)
        {
            if (_ended)
            {
                return 0;
            }
            Next();
        }
        var n = Math.Min(destination.Length, _plain.Length - _position);
        _plain.AsSpan(_position, n).CopyTo(destination);
        _position += n;
        return n;
    }

    public override int Read(byte[] buffer, int offset, int count) => Read(buffer.AsSpan(offset, count));

    /// <summary>Reads exactly <paramref name="destination"/>'s length or throws (the index ended early).</summary>
    public void ReadFully(Span<byte> destination)
    {
        while (destination.Length > 0)
        {
            var n = Read(destination);
            if (n == 0)
            {
                throw new RepositoryCorruptException($"{where}: ends before its content does (truncated)");
            }
            destination = destination[n..];
        }
    }

    private void Next()
    {
        if (!_started)
        {
            Span<byte> magic = stackalloc byte[4];
            Fill(magic);
            if (!magic.SequenceEqual(SealedStream.Magic))
            {
                throw new RepositoryCorruptException($"{where}: not an index file (no 'BKI1' header)");
            }
            _started = true;
        }
        var header = new byte[4 + SealedStream.NonceLength + SealedStream.TagLength];
        Fill(header);
        var length = BinaryPrimitives.ReadInt32BigEndian(header);
        if (length is < 0 or > SealedStream.SegmentBytes)
        {
            throw new RepositoryCorruptException($"{where}: segment {_segment} claims {length} bytes (at most {SealedStream.SegmentBytes}); damaged");
        }
        var cipher = new byte[length];
        Fill(cipher);
        var plain = new byte[length];
        // The last segment is the one the writer marked so: try "last" only when nothing follows.
        var last = input.CanSeek ? input.Position == input.Length : length < SealedStream.SegmentBytes;
        if (!TryOpen(header, cipher, plain, last) && !TryOpen(header, cipher, plain, !last))
        {
            throw new RepositoryCorruptException($"{where}: segment {_segment} fails authentication (damaged, cut, reordered, or sealed with another key); refused");
        }
        _plain = plain;
        _position = 0;
        _segment++;
    }

    private bool TryOpen(byte[] header, byte[] cipher, byte[] plain, bool last)
    {
        try
        {
            _gcm.Decrypt(header.AsSpan(4, SealedStream.NonceLength), cipher, header.AsSpan(4 + SealedStream.NonceLength), plain, SealedStream.AssociatedData(name, _segment, last));
            _ended = last;
            return true;
        }
        catch (AuthenticationTagMismatchException)
        {
            return false;
        }
    }

    private void Fill(Span<byte> buffer)
    {
        while (buffer.Length > 0)
        {
            var n = input.Read(buffer);
            if (n == 0)
            {
                throw new RepositoryCorruptException($"{where}: ends in the middle of a segment or without its last one (truncated: an interrupted write, or damage)");
            }
            buffer = buffer[n..];
        }
    }

    protected override void Dispose(bool disposing)
    {
        _gcm.Dispose();
        if (disposing)
        {
            input.Dispose(); // the index file: left open, every restore and verify kept a descriptor of it
        }
        base.Dispose(disposing);
    }

    public override bool CanRead => true;
    public override bool CanSeek => false;
    public override bool CanWrite => false;
    public override long Length => throw new NotSupportedException();
    public override long Position { get => throw new NotSupportedException(); set => throw new NotSupportedException(); }
    public override void Flush() { }
    public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();
    public override void SetLength(long value) => throw new NotSupportedException();
    public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException();
}
