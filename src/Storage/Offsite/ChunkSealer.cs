using System.Buffers.Binary;
using System.Security.Cryptography;
using Backupd.Storage.Delta;
using Backupd.Storage.Repository;
using ZstdSharp;

namespace Backupd.Storage.Offsite;

/// <summary>
/// Names, seals and opens chunks (docs/repository-format.md, "Chunk frame"). A sealed chunk is
/// <c>"BKC1" | nonce (12) | tag (16) | AES-256-GCM(flag (1) | body)</c>: the body is the zstd-compressed plaintext
/// (flag 1) or, when that would not be smaller, the plaintext (flag 0). The chunk id is the GCM associated data,
/// so a chunk file renamed to another id fails to open; after decryption the plaintext's keyed hash must give the
/// id again. Nonces are random (96 bits; a repository stays far below 2^32 chunks per key). Thread-safe.
/// </summary>
public sealed class ChunkSealer : IDisposable
{
    public const int HeaderLength = 4 + NonceLength + TagLength;
    public const int MaxPlaintext = BlockHasher.MaxBlockSize;
    private const int NonceLength = 12;
    private const int TagLength = 16;
    private const byte Stored = 0;
    private const byte Zstd = 1;
    private const int Level = 1; // the fastest: chunks are small and the link, not the ratio, is what limits a copy
    private static ReadOnlySpan<byte> Magic => "BKC1"u8;

    private readonly OffsiteKey _key;
    private readonly ThreadLocal<AesGcm> _gcm;
    private readonly ThreadLocal<Compressor> _compressor = new(() => new Compressor(Level), trackAllValues: true);
    private readonly ThreadLocal<Decompressor> _decompressor = new(() => new Decompressor(), trackAllValues: true);

    public ChunkSealer(OffsiteKey key)
    {
        _key = key;
        var dataKey = key.DataKey;
        _gcm = new ThreadLocal<AesGcm>(() => new AesGcm(dataKey, TagLength), trackAllValues: true);
    }

    /// <summary>The largest sealed frame of a chunk of <paramref name="plaintextLength"/> bytes.</summary>
    public static int MaxFrameLength(int plaintextLength) => HeaderLength + 1 + plaintextLength;

    /// <summary>The chunk id of <paramref name="plaintext"/>: keyed BLAKE3, 256 bits.</summary>
    public ChunkId Id(ReadOnlySpan<byte> plaintext)
    {
        using var hasher = Blake3.Hasher.NewKeyed(_key.IdKey);
        hasher.Update(plaintext);
        Span<byte> hash = stackalloc byte[ChunkId.Length];
        hasher.Finalize(hash);
        var id = ChunkId.Read(hash);
        return id.IsZero ? new ChunkId(0, 1) : id; // the all-zero name is reserved for zero blocks (chance 2^-256)
    }

    /// <summary>
    /// A file's digest in a copy: keyed BLAKE3 over its length and its chunk ids in order ("c3k:" + hex). Every
    /// chunk's content is bound to its id, so this names the content as well, without hashing it twice.
    /// </summary>
    public sealed class FileDigest : IDisposable
    {
        private readonly Blake3.Hasher _hasher;

        internal FileDigest(byte[] key, long fileSize)
        {
            _hasher = Blake3.Hasher.NewKeyed(key);
            _hasher.Update("backupd-offsite file digest v1"u8);
            Span<byte> size = stackalloc byte[8];
            BinaryPrimitives.WriteInt64BigEndian(size, fileSize);
            _hasher.Update(size);
        }

        public void Add(ReadOnlySpan<byte> ids) => _hasher.Update(ids);

        public string Finish()
        {
            Span<byte> hash = stackalloc byte[ChunkId.Length];
            _hasher.Finalize(hash);
            return "c3k:" + Convert.ToHexStringLower(hash);
        }

        public void Dispose() => _hasher.Dispose();
    }

    public FileDigest NewFileDigest(long fileSize) => new(_key.IdKey, fileSize);

    /// <summary>Seals <paramref name="plaintext"/> under <paramref name="id"/> into a new frame.</summary>
    public byte[] Seal(ChunkId id, ReadOnlySpan<byte> plaintext)
    {
        var body = Body(plaintext);
        var frame = new byte[HeaderLength + body.Length];
        Encrypt(id, body, frame);
        return frame;
    }

    /// <summary>
    /// <see cref="Seal(ChunkId, ReadOnlySpan{byte})"/> into <paramref name="destination"/> (at least
    /// <see cref="MaxFrameLength"/> long): a copy seals a batch into one pooled buffer rather than a new array per
    /// chunk (256 KiB frames would each be a large-object allocation, only freed by a full collection).
    /// </summary>
    /// <returns>The frame's length.</returns>
    public int Seal(ChunkId id, ReadOnlySpan<byte> plaintext, Span<byte> destination)
    {
        var body = Body(plaintext);
        var frame = destination[..(HeaderLength + body.Length)];
        Encrypt(id, body, frame);
        return frame.Length;
    }

    /// <summary>The frame's plaintext body, flag then zstd or stored bytes, in this thread's scratch buffer.</summary>
    private ReadOnlySpan<byte> Body(ReadOnlySpan<byte> plaintext)
    {
        if (plaintext.Length > MaxPlaintext)
        {
            throw new ArgumentException($"a chunk is at most {MaxPlaintext} bytes, got {plaintext.Length}", nameof(plaintext));
        }
        var body = Scratch(1 + Compressor.GetCompressBound(plaintext.Length)); // per thread: only the frame is new
        var compressed = _compressor.Value!.Wrap(plaintext, body.AsSpan(1));
        if (compressed < plaintext.Length)
        {
            body[0] = Zstd;
            return body.AsSpan(0, 1 + compressed);
        }
        body[0] = Stored;
        plaintext.CopyTo(body.AsSpan(1));
        return body.AsSpan(0, 1 + plaintext.Length);
    }

    private void Encrypt(ChunkId id, ReadOnlySpan<byte> body, Span<byte> frame)
    {
        Magic.CopyTo(frame);
        var nonce = frame.Slice(4, NonceLength);
        RandomNumberGenerator.Fill(nonce);
        Span<byte> aad = stackalloc byte[ChunkId.Length];
        id.Write(aad);
        _gcm.Value!.Encrypt(nonce, body, frame[HeaderLength..], frame.Slice(4 + NonceLength, TagLength), aad);
    }

    [ThreadStatic]
    private static byte[]? t_scratch;

    private static byte[] Scratch(int length)
    {
        if (t_scratch is null || t_scratch.Length < length)
        {
            t_scratch = new byte[Math.Max(length, 1 + Compressor.GetCompressBound(BlockHasher.MaxBlockSize / 64))];
        }
        return t_scratch;
    }

    /// <summary>
    /// Opens a frame into <paramref name="plaintext"/> (at least <see cref="MaxPlaintext"/> bytes or the chunk's size);
    /// returns the length. A damaged, foreign or misnamed chunk throws <see cref="RepositoryCorruptException"/>.
    /// </summary>
    public int Open(ChunkId id, ReadOnlySpan<byte> frame, Span<byte> plaintext, string where)
    {
        if (!HasValidFraming(frame))
        {
            throw new RepositoryCorruptException($"{where}: not a chunk frame ({frame.Length} bytes, no 'BKC1' header)");
        }
        var body = new byte[frame.Length - HeaderLength];
        Span<byte> aad = stackalloc byte[ChunkId.Length];
        id.Write(aad);
        try
        {
            _gcm.Value!.Decrypt(frame.Slice(4, NonceLength), frame[HeaderLength..], frame.Slice(4 + NonceLength, TagLength), body, aad);
        }
        catch (AuthenticationTagMismatchException)
        {
            throw new RepositoryCorruptException($"{where}: fails authentication (damaged, stored under another id, or sealed with another key); refused");
        }
        int length;
        switch (body[0])
        {
            case Stored:
                length = body.Length - 1;
                body.AsSpan(1).CopyTo(plaintext);
                break;
            case Zstd:
                try
                {
                    length = _decompressor.Value!.Unwrap(body.AsSpan(1), plaintext);
                }
                catch (ZstdException e)
                {
                    throw new RepositoryCorruptException($"{where}: authenticated but does not decompress ({e.Message})", e);
                }
                break;
            default:
                throw new RepositoryCorruptException($"{where}: unknown body kind {body[0]}");
        }
        if (Id(plaintext[..length]) != id)
        {
            throw new RepositoryCorruptException($"{where}: content does not hash to its id; refused");
        }
        return length;
    }

    /// <summary>What the server can check without the key: the header is there and the frame not absurdly long.</summary>
    public static bool HasValidFraming(ReadOnlySpan<byte> frame) =>
        frame.Length >= HeaderLength + 1 && frame.Length <= MaxFrameLength(MaxPlaintext) + 64 && frame[..4].SequenceEqual(Magic);

    public void Dispose()
    {
        foreach (var g in _gcm.Values)
        {
            g.Dispose();
        }
        foreach (var c in _compressor.Values)
        {
            c.Dispose();
        }
        foreach (var d in _decompressor.Values)
        {
            d.Dispose();
        }
        _gcm.Dispose();
        _compressor.Dispose();
        _decompressor.Dispose();
    }
}
