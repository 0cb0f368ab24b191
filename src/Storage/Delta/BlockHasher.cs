using System.Buffers.Binary;
using System.Security.Cryptography;

namespace Backupd.Storage.Delta;

/// <summary>
/// The strong per-block tag: AES-256-GMAC under a 256-bit per-repository key (the block is GCM's
/// associated data, the nonce fixed), 128 bits. Equal tags mean equal GHASH values, and GHASH keyed with
/// the secret H = AES_K(0) is almost-universal: two distinct blocks of l 16-byte words collide with
/// probability at most (l+1)/2^128 for a guest that does not know the key. Guest data is
/// attacker-controlled, so an unkeyed or seed-only hash (XXH3) is not enough; BLAKE3-keyed would be,
/// at a quarter of the speed (docs/repository-format.md). AES-NI/PCLMULQDQ via OpenSSL.
/// Thread-safe: one AES-GCM context per thread.
/// </summary>
public sealed class BlockHasher : IDisposable
{
    public const int KeyLength = 32;
    private static readonly byte[] Nonce = new byte[12];
    private readonly byte[] _key;
    private readonly ThreadLocal<AesGcm> _gcm;

    public BlockHasher(ReadOnlySpan<byte> key)
    {
        if (key.Length != KeyLength)
        {
            throw new ArgumentException($"block hash key must be {KeyLength} bytes, got {key.Length}", nameof(key));
        }
        _key = key.ToArray();
        var k = _key;
        _gcm = new ThreadLocal<AesGcm>(() => new AesGcm(k, 16), trackAllValues: true);
        Span<byte> id = stackalloc byte[32];
        Blake3.Hasher.Hash(_key, id);
        KeyId = BinaryPrimitives.ReadUInt64LittleEndian(id);
    }

    /// <summary>A public fingerprint of the key, stored in signatures so a signature made under another key is refused.</summary>
    public ulong KeyId { get; }

    public UInt128 Hash(ReadOnlySpan<byte> block)
    {
        Span<byte> tag = stackalloc byte[16];
        _gcm.Value!.Encrypt(Nonce, ReadOnlySpan<byte>.Empty, Span<byte>.Empty, tag, block);
        return BinaryPrimitives.ReadUInt128LittleEndian(tag);
    }

    public void Dispose()
    {
        foreach (var gcm in _gcm.Values)
        {
            gcm.Dispose();
        }
        _gcm.Dispose();
    }

    public static bool IsZero(ReadOnlySpan<byte> block) => !block.ContainsAnyExcept((byte)0);

    /// <summary>
    /// The one accepted block-size range (policies, `backup --file --block-size`, the repository, signatures).
    /// 4 MiB at most: a block must fit one undo entry and one delta literal (both 4 MiB), and a scan window
    /// (8 MiB) holds at least two blocks, so the scan's memory stays three 8 MiB windows.
    /// </summary>
    public const int MinBlockSize = 4 << 10;
    public const int MaxBlockSize = 4 << 20;

    /// <summary>The range in words, for messages: "a power of two from 4 KiB to 4 MiB".</summary>
    public const string BlockSizeRange = "a power of two from 4 KiB (4096) to 4 MiB (4194304)";

    public static bool IsValidBlockSize(long blockSize) =>
        blockSize is >= MinBlockSize and <= MaxBlockSize && (blockSize & (blockSize - 1)) == 0;

    /// <summary>Checks a block size: <see cref="BlockSizeRange"/>.</summary>
    public static void ValidateBlockSize(int blockSize)
    {
        if (!IsValidBlockSize(blockSize))
        {
            throw new ArgumentOutOfRangeException(nameof(blockSize), blockSize, $"block size must be {BlockSizeRange}");
        }
    }
}
