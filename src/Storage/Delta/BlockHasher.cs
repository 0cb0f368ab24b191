using System.Buffers.Binary;

namespace Backupd.Storage.Delta;

/// <summary>
/// The strong per-block hash: BLAKE3 in keyed mode (a PRF) under a 256-bit per-repository key,
/// truncated to 128 bits. Guest data is attacker-controlled; without the key a guest cannot
/// predict tags, so it cannot craft two different blocks with the same tag (see
/// docs/repository-format.md for the choice against seeded XXH3).
/// Thread-safe: each call uses its own hasher state.
/// </summary>
public sealed class BlockHasher
{
    public const int KeyLength = 32;
    private readonly byte[] _key;

    public BlockHasher(ReadOnlySpan<byte> key)
    {
        if (key.Length != KeyLength)
        {
            throw new ArgumentException($"block hash key must be {KeyLength} bytes, got {key.Length}", nameof(key));
        }
        _key = key.ToArray();
        Span<byte> id = stackalloc byte[32];
        Blake3.Hasher.Hash(_key, id);
        KeyId = BinaryPrimitives.ReadUInt64LittleEndian(id);
    }

    /// <summary>A public fingerprint of the key, stored in signatures so a signature made under another key is refused.</summary>
    public ulong KeyId { get; }

    public UInt128 Hash(ReadOnlySpan<byte> block)
    {
        using var hasher = Blake3.Hasher.NewKeyed(_key);
        hasher.Update(block);
        Span<byte> tag = stackalloc byte[16];
        hasher.Finalize(tag);
        return BinaryPrimitives.ReadUInt128LittleEndian(tag);
    }

    public static bool IsZero(ReadOnlySpan<byte> block) => !block.ContainsAnyExcept((byte)0);

    /// <summary>Checks a block size: a power of two from 4 KiB to 4 MiB.</summary>
    public static void ValidateBlockSize(int blockSize)
    {
        if (blockSize < 4096 || blockSize > 4 << 20 || (blockSize & (blockSize - 1)) != 0)
        {
            throw new ArgumentOutOfRangeException(nameof(blockSize), blockSize, "block size must be a power of two from 4096 (4 KiB) to 4194304 (4 MiB)");
        }
    }
}
