using Backupd.Storage.Delta;
using CsCheck;

namespace Backupd.Storage.Tests.Delta;

/// <summary>Any flipped bit or cut in a signature or undo record is reported, never turned into a wrong result.</summary>
public class FormatCorruptionTests
{
    private const int BlockSize = 4096;
    private static readonly BlockHasher Hasher = new(TestFiles.Key);

    private static (byte[] Old, byte[] New, byte[] Sig, byte[] Undo) Sample(string kind = "undo")
    {
        var rng = new Random(11);
        var old = kind == "undo-compressed" ? TestFiles.Compressible(rng, 9 * BlockSize + 77, BlockSize) : TestFiles.ImageLike(rng, 9 * BlockSize + 77, BlockSize);
        var @new = TestFiles.Apply(rng, old, TestFiles.Edit.InPlace, BlockSize);
        @new = TestFiles.Apply(rng, @new, TestFiles.Edit.Grow, BlockSize);
        var sig = Signature.Compute(new MemoryStream(old), Hasher, BlockSize);
        var sigStream = new MemoryStream();
        SignatureFormat.Write(sig, sigStream);
        var file = new MemoryStream();
        file.Write(old);
        var undo = new MemoryStream();
        InPlaceUpdate.Apply(file, old, @new, Hasher, BlockSize, undo, compress: kind != "undo-v1", out var writer);
        if (kind == "undo-compressed")
        {
            Assert.True(writer.BytesWritten < writer.UncompressedBytes, "the sample holds compressed entries");
        }
        return (old, @new, sigStream.ToArray(), undo.ToArray());
    }

    /// <summary>undo: version 2 of random data (entries stored as they are); undo-compressed: version 2 with zstd entries; undo-v1: the old uncompressed format.</summary>
    public static TheoryData<string> Kinds => new() { "signature", "undo", "undo-compressed", "undo-v1" };

    private static void Consume(string kind, byte[] bytes)
    {
        var s = new MemoryStream(bytes);
        switch (kind)
        {
            case "signature":
                SignatureFormat.Read(s, Hasher.KeyId);
                break;
            default:
                UndoRecord.Verify(s);
                break;
        }
    }

    private static byte[] Pick(string kind, (byte[] Old, byte[] New, byte[] Sig, byte[] Undo) x) =>
        kind == "signature" ? x.Sig : x.Undo;

    [Theory]
    [MemberData(nameof(Kinds))]
    public void Intact_input_is_accepted(string kind)
    {
        var x = Sample(kind);
        Consume(kind, Pick(kind, x));
    }

    [Theory]
    [MemberData(nameof(Kinds))]
    public void Any_flipped_bit_is_detected(string kind)
    {
        var x = Sample(kind);
        var good = Pick(kind, x);
        Gen.Int[0, good.Length * 8 - 1].Sample(bit =>
        {
            var bad = (byte[])good.Clone();
            bad[bit / 8] ^= (byte)(1 << (bit % 8));
            Assert.ThrowsAny<CorruptDataException>(() => Consume(kind, bad));
        }, iter: 400);
    }

    [Theory]
    [MemberData(nameof(Kinds))]
    public void Any_truncation_is_detected(string kind)
    {
        var x = Sample(kind);
        var good = Pick(kind, x);
        Gen.Int[0, good.Length - 1].Sample(cut =>
        {
            var bad = good.AsSpan(0, cut).ToArray();
            var e = Assert.ThrowsAny<CorruptDataException>(() => Consume(kind, bad));
            Assert.False(string.IsNullOrEmpty(e.Message));
        }, iter: 300);
    }

    [Fact]
    public void Signature_made_under_another_key_is_refused()
    {
        var x = Sample();
        var e = Assert.Throws<CorruptDataException>(() => SignatureFormat.Read(new MemoryStream(x.Sig), new BlockHasher(new byte[32]).KeyId));
        Assert.Contains("key", e.Message);
    }

    [Theory]
    [InlineData("undo")]
    [InlineData("undo-compressed")]
    [InlineData("undo-v1")]
    public void Truncated_undo_record_is_usable_up_to_its_last_complete_entry_in_recovery_mode(string kind)
    {
        var x = Sample(kind);
        // Cut inside the end marker/trailer: every entry is complete, so tolerant apply restores the old file.
        var cut = x.Undo.AsSpan(0, x.Undo.Length - 10).ToArray();
        var file = new MemoryStream();
        file.Write(x.New);
        UndoRecord.Apply(new MemoryStream(cut), new StreamRandomAccessFile(file), tolerateTruncation: true);
        Assert.True(file.ToArray().AsSpan().SequenceEqual(x.Old));
        Assert.ThrowsAny<CorruptDataException>(() => UndoRecord.Apply(new MemoryStream(cut), new StreamRandomAccessFile(new MemoryStream(x.New))));
    }
}
