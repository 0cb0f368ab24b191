using System.Buffers.Binary;

namespace Backupd.Storage.Offsite;

/// <summary>
/// A chunk's name in a copy repository: the keyed BLAKE3 (256 bits) of its plaintext, so equal blocks of any file,
/// point or VM get one name and are stored once, and the remote host, who lacks the key, cannot test a guess of the
/// content. <see cref="Zero"/> (all bits clear) stands for an all-zero block, which is never stored.
/// </summary>
public readonly record struct ChunkId(UInt128 High, UInt128 Low)
{
    public const int Length = 32;

    public static ChunkId Zero => default;

    public bool IsZero => High == 0 && Low == 0;

    public static ChunkId Read(ReadOnlySpan<byte> bytes) =>
        new(BinaryPrimitives.ReadUInt128BigEndian(bytes), BinaryPrimitives.ReadUInt128BigEndian(bytes[16..]));

    public void Write(Span<byte> bytes)
    {
        BinaryPrimitives.WriteUInt128BigEndian(bytes, High);
        BinaryPrimitives.WriteUInt128BigEndian(bytes[16..], Low);
    }

    public string ToHex()
    {
        Span<byte> b = stackalloc byte[Length];
        Write(b);
        return Convert.ToHexStringLower(b);
    }

    /// <summary>Parses 64 lower-case hex digits (a chunk's file name); false for anything else.</summary>
    public static bool TryParse(string hex, out ChunkId id)
    {
        id = default;
        if (hex.Length != Length * 2 || !hex.All(c => char.IsAsciiDigit(c) || c is >= 'a' and <= 'f'))
        {
            return false;
        }
        id = Read(Convert.FromHexString(hex));
        return true;
    }

    public override string ToString() => ToHex();
}
