using System.Buffers.Binary;
using System.IO.Hashing;
using Backupd.Storage.Delta;

namespace Backupd.Storage.Tests.Delta;

/// <summary>Undo record version 2: data entries zstd-compressed when that is smaller; version 1 records still read.</summary>
public class UndoCompressionTests
{
    private const int BlockSize = 4096;
    private static readonly BlockHasher Hasher = new(TestFiles.Key);

    private static (byte[] Old, byte[] New, byte[] Undo, UndoRecordWriter Writer) Update(byte[] old, int seed, bool compress)
    {
        var rng = new Random(seed);
        var @new = (byte[])old.Clone();
        for (var b = 0; b < old.Length / BlockSize; b += 3)
        {
            rng.NextBytes(@new.AsSpan(b * BlockSize, BlockSize));
        }
        var file = new MemoryStream();
        file.Write(old);
        var undo = new MemoryStream();
        InPlaceUpdate.Apply(file, old, @new, Hasher, BlockSize, undo, compress, out var writer);
        Assert.Equal(@new, file.ToArray());
        return (old, @new, undo.ToArray(), writer);
    }

    private static byte[] Undone(byte[] current, byte[] undo)
    {
        var file = new MemoryStream();
        file.Write(current);
        UndoRecord.Apply(new MemoryStream(undo), new StreamRandomAccessFile(file));
        return file.ToArray();
    }

    private static ushort VersionOf(byte[] record) => BinaryPrimitives.ReadUInt16LittleEndian(record.AsSpan(8));

    private static List<UndoEntryKind> StoredKinds(byte[] record)
    {
        // Walks the body as stored (kind byte, offset, length, [compressed length], data, checksum).
        var kinds = new List<UndoEntryKind>();
        var pos = 16 + 8 + 8;
        while (record[pos] != 0xFF)
        {
            var kind = (UndoEntryKind)record[pos];
            kinds.Add(kind);
            var length = (int)BinaryPrimitives.ReadUInt32LittleEndian(record.AsSpan(pos + 9));
            pos += 13 + kind switch
            {
                UndoEntryKind.Data => length,
                UndoEntryKind.CompressedData => 4 + (int)BinaryPrimitives.ReadUInt32LittleEndian(record.AsSpan(pos + 13)),
                _ => 0,
            } + 8;
        }
        return kinds;
    }

    [Fact]
    public void Compressible_old_bytes_are_stored_compressed_and_undo_restores_them_exactly()
    {
        var old = TestFiles.Compressible(new Random(1), 64 * BlockSize + 123, BlockSize);
        var (_, @new, undo, writer) = Update(old, 2, compress: true);
        Assert.Equal(UndoRecord.Version, VersionOf(undo));
        Assert.Contains(UndoEntryKind.CompressedData, StoredKinds(undo));
        Assert.Equal(undo.Length, writer.BytesWritten);
        Assert.True(writer.BytesWritten * 2 < writer.UncompressedBytes, $"{writer.BytesWritten} of {writer.UncompressedBytes}");
        Assert.Equal(old, Undone(@new, undo));
    }

    [Fact]
    public void Uncompressed_size_equals_the_version_1_record_of_the_same_update()
    {
        var old = TestFiles.Compressible(new Random(3), 40 * BlockSize + 5, BlockSize);
        var (_, _, v2, w2) = Update(old, 4, compress: true);
        var (_, _, v1, w1) = Update(old, 4, compress: false);
        Assert.Equal(v1.Length, w2.UncompressedBytes);
        Assert.Equal(w1.BytesWritten, w1.UncompressedBytes);
        Assert.True(v2.Length < v1.Length);
    }

    [Fact]
    public void Incompressible_old_bytes_are_stored_as_they_are()
    {
        var old = TestFiles.ImageLike(new Random(5), 30 * BlockSize, BlockSize);
        var (_, @new, undo, writer) = Update(old, 6, compress: true);
        Assert.DoesNotContain(UndoEntryKind.CompressedData, StoredKinds(undo));
        Assert.Equal(writer.BytesWritten, writer.UncompressedBytes);
        Assert.Equal(old, Undone(@new, undo));
    }

    [Fact]
    public void Version_1_records_are_still_read_and_applied()
    {
        var old = TestFiles.Compressible(new Random(7), 33 * BlockSize + 9, BlockSize);
        var (_, @new, undo, _) = Update(old, 8, compress: false);
        Assert.Equal(UndoRecord.UncompressedVersion, VersionOf(undo));
        Assert.DoesNotContain(UndoEntryKind.CompressedData, StoredKinds(undo));
        using var reader = new UndoRecordReader(new MemoryStream(undo));
        Assert.Equal(UndoRecord.UncompressedVersion, reader.Version);
        Assert.Equal(old, Undone(@new, undo));
    }

    [Fact]
    public void A_compressed_entry_in_a_version_1_record_is_refused()
    {
        var old = TestFiles.Compressible(new Random(9), 20 * BlockSize, BlockSize);
        var (_, _, undo, _) = Update(old, 10, compress: true);
        var v1 = (byte[])undo.Clone();
        BinaryPrimitives.WriteUInt16LittleEndian(v1.AsSpan(8), UndoRecord.UncompressedVersion);
        BinaryPrimitives.WriteUInt64LittleEndian(v1.AsSpan(24), XxHash3.HashToUInt64(v1.AsSpan(0, 24))); // a consistent header
        var e = Assert.Throws<CorruptDataException>(() => UndoRecord.Verify(new MemoryStream(v1)));
        Assert.Contains("unknown entry kind 3", e.Message);
    }

    [Fact]
    public void A_frame_that_decompresses_to_another_length_is_refused_although_its_checksums_match()
    {
        // Hand-built version 2 record: one compressed entry claiming 8192 bytes whose frame holds 8191.
        var payload = new byte[8191];
        var frame = new ZstdSharp.Compressor(1).Wrap(payload).ToArray();
        var body = new MemoryStream();
        var entry = new byte[13 + 4 + frame.Length];
        entry[0] = (byte)UndoEntryKind.CompressedData;
        BinaryPrimitives.WriteInt64LittleEndian(entry.AsSpan(1), 0);
        BinaryPrimitives.WriteUInt32LittleEndian(entry.AsSpan(9), 8192);
        BinaryPrimitives.WriteUInt32LittleEndian(entry.AsSpan(13), (uint)frame.Length);
        frame.CopyTo(entry.AsSpan(17));
        body.Write(entry);
        body.Write(BitConverter.GetBytes(XxHash3.HashToUInt64(entry)));
        body.WriteByte(0xFF);
        var record = new MemoryStream();
        var header = new byte[32];
        UndoRecord.Magic.CopyTo(header);
        BinaryPrimitives.WriteUInt16LittleEndian(header.AsSpan(8), UndoRecord.Version);
        BinaryPrimitives.WriteUInt32LittleEndian(header.AsSpan(12), 8);
        BinaryPrimitives.WriteInt64LittleEndian(header.AsSpan(16), 8192);
        BinaryPrimitives.WriteUInt64LittleEndian(header.AsSpan(24), XxHash3.HashToUInt64(header.AsSpan(0, 24)));
        record.Write(header);
        record.Write(body.ToArray());
        record.Write("BKDEND\0\0"u8);
        record.Write(BitConverter.GetBytes(body.Length));
        record.Write(BitConverter.GetBytes(XxHash3.HashToUInt64(body.ToArray())));
        var e = Assert.Throws<CorruptDataException>(() => UndoRecord.Verify(new MemoryStream(record.ToArray())));
        Assert.Contains("decompress", e.Message);
    }

    [Fact]
    public void Merging_compressed_records_gives_the_oldest_version()
    {
        var v0 = TestFiles.Compressible(new Random(11), 50 * BlockSize + 17, BlockSize);
        var (_, v1, undo1, _) = Update(v0, 12, compress: false); // an old record next to a new one
        var (_, v2, undo2, _) = Update(v1, 13, compress: true);
        var merged = new MemoryStream();
        UndoRecord.Merge(new MemoryStream(undo2), new MemoryStream(undo1), merged);
        Assert.Equal(UndoRecord.Version, VersionOf(merged.ToArray()));
        Assert.Contains(UndoEntryKind.CompressedData, StoredKinds(merged.ToArray()));
        Assert.Equal(v0, Undone(v2, merged.ToArray()));
    }
}
