using System.Buffers.Binary;

namespace Backupd.Storage.Delta;

/// <summary>
/// The signature of one version of a file: its length, the block size, and per block an all-zero
/// flag and a 128-bit keyed tag (zero blocks carry no tag). Optionally a 32-bit weak checksum per
/// block (a field of the signature format; the backup writes none). Memory: 17 bytes per block (+4 with weak sums): 17 MiB for
/// 64 GiB at 64 KiB blocks.
/// </summary>
public sealed class Signature
{
    private readonly UInt128[] _tags;
    private readonly bool[] _zero;
    private readonly uint[]? _weak;

    internal Signature(int blockSize, long length, ulong keyId, UInt128[] tags, bool[] zero, uint[]? weak)
    {
        BlockSize = blockSize;
        Length = length;
        KeyId = keyId;
        _tags = tags;
        _zero = zero;
        _weak = weak;
    }

    public int BlockSize { get; }
    public long Length { get; }
    public ulong KeyId { get; }
    public long BlockCount => _tags.Length;
    public bool HasWeakSums => _weak is not null;

    public static long BlockCountFor(long length, int blockSize) => (length + blockSize - 1) / blockSize;

    public bool IsZero(long block) => _zero[block];
    public UInt128 Tag(long block) => _tags[block];
    public uint Weak(long block) => _weak is null ? throw new InvalidOperationException("signature has no weak sums") : _weak[block];

    /// <summary>Length of block <paramref name="block"/> (the last one may be short).</summary>
    public int BlockLength(long block) => (int)Math.Min(BlockSize, Length - (block * BlockSize));

    /// <summary>True when block <paramref name="block"/> exists and has the given content.</summary>
    public bool Matches(long block, bool isZero, UInt128 tag, int length) =>
        block < BlockCount && BlockLength(block) == length && (_zero[block] ? isZero : !isZero && _tags[block] == tag);

    /// <summary>
    /// The whole-content digest: BLAKE3 over (length, block size, every block's flag and tag).
    /// Two versions have the same digest exactly when every block matches, so verify can name the first bad block.
    /// </summary>
    public string Digest()
    {
        using var hasher = Blake3.Hasher.New();
        Span<byte> head = stackalloc byte[32];
        "bkd-dg1\0"u8.CopyTo(head);
        BinaryPrimitives.WriteInt64LittleEndian(head[8..], Length);
        BinaryPrimitives.WriteInt64LittleEndian(head[16..], BlockSize);
        BinaryPrimitives.WriteUInt64LittleEndian(head[24..], KeyId);
        hasher.Update(head);
        Span<byte> entry = stackalloc byte[17];
        for (long i = 0; i < _tags.Length; i++)
        {
            entry[0] = _zero[i] ? (byte)1 : (byte)0;
            BinaryPrimitives.WriteUInt128LittleEndian(entry[1..], _tags[i]);
            hasher.Update(entry);
        }
        Span<byte> digest = stackalloc byte[32];
        hasher.Finalize(digest);
        return "b3k:" + Convert.ToHexStringLower(digest);
    }

    /// <summary>Computes the signature of a whole stream (read once, sequentially).</summary>
    public static Signature Compute(Stream input, BlockHasher hasher, int blockSize)
    {
        BlockHasher.ValidateBlockSize(blockSize);
        var builder = new SignatureBuilder(blockSize, hasher.KeyId);
        var buffer = new byte[blockSize];
        while (true)
        {
            var n = ReadBlock(input, buffer);
            if (n == 0)
            {
                break;
            }
            var block = buffer.AsSpan(0, n);
            var zero = BlockHasher.IsZero(block);
            builder.Add(zero, zero ? default : hasher.Hash(block), 0, n);
            if (n < blockSize)
            {
                break;
            }
        }
        return builder.Build();
    }

    internal static int ReadBlock(Stream input, Span<byte> buffer)
    {
        var total = 0;
        while (total < buffer.Length)
        {
            var n = input.Read(buffer[total..]);
            if (n == 0)
            {
                break;
            }
            total += n;
        }
        return total;
    }

}

/// <summary>Collects block entries in order; used by every producer of signatures.</summary>
/// <param name="expectedBlocks">Number of blocks expected: storage is allocated once (no regrowing or copying for large files).</param>
public sealed class SignatureBuilder(int blockSize, ulong keyId, bool weakSums = false, long expectedBlocks = 0)
{
    private UInt128[] _tags = new UInt128[Math.Max(expectedBlocks, 16)];
    private bool[] _zero = new bool[Math.Max(expectedBlocks, 16)];
    private uint[]? _weak = weakSums ? new uint[Math.Max(expectedBlocks, 16)] : null;
    private long _count;
    private long _length;
    private bool _short;

    public int BlockSize => blockSize;
    public long Length => _length;

    public void Add(bool isZero, UInt128 tag, uint weak, int length)
    {
        if (_short)
        {
            throw new InvalidOperationException("only the last block may be shorter than the block size");
        }
        if (length <= 0 || length > blockSize)
        {
            throw new ArgumentOutOfRangeException(nameof(length));
        }
        if (_count == _tags.Length)
        {
            var grown = _tags.Length * 2;
            Array.Resize(ref _tags, grown);
            Array.Resize(ref _zero, grown);
            if (_weak is not null)
            {
                Array.Resize(ref _weak, grown);
            }
        }
        _short = length < blockSize;
        _tags[_count] = isZero ? default : tag;
        _zero[_count] = isZero;
        if (_weak is not null)
        {
            _weak[_count] = weak;
        }
        _count++;
        _length += length;
    }

    /// <summary>The signature; the builder must not be used afterwards (its storage is handed over).</summary>
    public Signature Build()
    {
        if (_tags.Length != _count)
        {
            Array.Resize(ref _tags, (int)_count);
            Array.Resize(ref _zero, (int)_count);
            if (_weak is not null)
            {
                Array.Resize(ref _weak, (int)_count);
            }
        }
        return new Signature(blockSize, _length, keyId, _tags, _zero, _weak);
    }
}
