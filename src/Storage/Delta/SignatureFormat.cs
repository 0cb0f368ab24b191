using System.Buffers.Binary;

namespace Backupd.Storage.Delta;

/// <summary>
/// Signature file, format version 1 (see docs/repository-format.md):
/// header fields: blockSize u32 | length u64 | blockCount u64 | hashAlgorithm u8 (2 = AES-256-GMAC, 128-bit) | flags u8 (bit0: weak sums) | keyId u64;
/// body: per block flags u8 (bit0: all zero) | tag[16] | [weak u32].
/// </summary>
public static class SignatureFormat
{
    public static ReadOnlySpan<byte> Magic => "BKDSIG\0\0"u8;
    public const ushort Version = 1;
    private const string What = "signature";

    /// <summary>2 = AES-256-GMAC tags (1 was BLAKE3-keyed during development and is not produced).</summary>
    public const byte HashAlgorithm = 2;

    public static void Write(Signature signature, Stream output)
    {
        var fields = new byte[30];
        BinaryPrimitives.WriteUInt32LittleEndian(fields, (uint)signature.BlockSize);
        BinaryPrimitives.WriteInt64LittleEndian(fields.AsSpan(4), signature.Length);
        BinaryPrimitives.WriteInt64LittleEndian(fields.AsSpan(12), signature.BlockCount);
        fields[20] = HashAlgorithm;
        fields[21] = signature.HasWeakSums ? (byte)1 : (byte)0;
        BinaryPrimitives.WriteUInt64LittleEndian(fields.AsSpan(22), signature.KeyId);
        FormatIO.WriteHeader(output, Magic, Version, fields);
        var body = new HashingWriter(output);
        var entry = new byte[21];
        var entryLength = signature.HasWeakSums ? 21 : 17;
        for (long i = 0; i < signature.BlockCount; i++)
        {
            entry[0] = signature.IsZero(i) ? (byte)1 : (byte)0;
            BinaryPrimitives.WriteUInt128LittleEndian(entry.AsSpan(1), signature.Tag(i));
            if (signature.HasWeakSums)
            {
                BinaryPrimitives.WriteUInt32LittleEndian(entry.AsSpan(17), signature.Weak(i));
            }
            body.Write(entry.AsSpan(0, entryLength));
        }
        body.WriteTrailer();
    }

    /// <summary>Reads a signature; <paramref name="expectedKeyId"/> (when given) must match the key it was made with.</summary>
    public static Signature Read(Stream input, ulong? expectedKeyId = null)
    {
        var fields = FormatIO.ReadHeader(input, What, Magic, Version);
        if (fields.Length < 30)
        {
            throw new CorruptDataException(What, 16, $"header fields are {fields.Length} bytes, expected 30");
        }
        var blockSize = (int)BinaryPrimitives.ReadUInt32LittleEndian(fields);
        var length = BinaryPrimitives.ReadInt64LittleEndian(fields.AsSpan(4));
        var blockCount = BinaryPrimitives.ReadInt64LittleEndian(fields.AsSpan(12));
        var algorithm = fields[20];
        var weak = (fields[21] & 1) != 0;
        var keyId = BinaryPrimitives.ReadUInt64LittleEndian(fields.AsSpan(22));
        if (!BlockHasher.IsValidBlockSize(blockSize))
        {
            throw new CorruptDataException(What, 16, $"block size {blockSize} is not {BlockHasher.BlockSizeRange}");
        }
        if (length < 0 || blockCount != Signature.BlockCountFor(length, blockSize))
        {
            throw new CorruptDataException(What, 20, $"block count {blockCount} does not fit length {length} at block size {blockSize}");
        }
        if (algorithm != HashAlgorithm)
        {
            throw new CorruptDataException(What, 36, $"hash algorithm {algorithm} is unknown (expected {HashAlgorithm} = AES-256-GMAC, 128-bit)");
        }
        if (expectedKeyId is { } k && k != keyId)
        {
            throw new CorruptDataException(What, 38, $"made with key {keyId:x16}, this repository's key is {k:x16}");
        }
        var reader = new HashingReader(input, What, 16 + fields.Length + 8);
        var builder = new SignatureBuilder(blockSize, keyId, weak, blockCount);
        Span<byte> entry = stackalloc byte[21];
        var entryLength = weak ? 21 : 17;
        for (long i = 0; i < blockCount; i++)
        {
            reader.Read(entry[..entryLength], $"entry of block {i}");
            if (entry[0] > 1)
            {
                throw reader.Error($"block {i} has unknown flags {entry[0]}");
            }
            var blockLength = (int)Math.Min(blockSize, length - (i * blockSize));
            builder.Add(entry[0] == 1, BinaryPrimitives.ReadUInt128LittleEndian(entry[1..]), weak ? BinaryPrimitives.ReadUInt32LittleEndian(entry[17..]) : 0, blockLength);
        }
        reader.CheckTrailer();
        return builder.Build();
    }
}
