using Backupd.Storage.Delta;
using CsCheck;

namespace Backupd.Storage.Tests.Delta;

public class DeltaPropertyTests
{
    private const int BlockSize = 4096;
    private static readonly BlockHasher Hasher = new(TestFiles.Key);

    /// <summary>A random old file (0..20 blocks, any length) and a chain of 1..3 random edits of it.</summary>
    private static readonly Gen<(byte[] Old, byte[] New, string Edits)> OldAndNew =
        Gen.Select(Gen.Int[0, 20 * BlockSize + 100], Gen.Enum<TestFiles.Edit>().Array[1, 3], Gen.Int)
           .Select(t =>
           {
               var rng = new Random(t.Item3);
               var old = TestFiles.ImageLike(rng, t.Item1, BlockSize);
               var current = old;
               foreach (var e in t.Item2)
               {
                   current = TestFiles.Apply(rng, current, e, BlockSize);
               }
               return (old, current, $"{t.Item1} bytes, {string.Join("+", t.Item2)}, seed {t.Item3}");
           });

    private static byte[] MakeDelta(byte[] old, byte[] @new, bool rolling)
    {
        var sig = Signature.Compute(new MemoryStream(old), Hasher, BlockSize, weakSums: rolling);
        var delta = new MemoryStream();
        var writer = new DeltaWriter(delta, BlockSize, old.Length);
        DeltaBuilder.Build(new MemoryStream(@new), sig, Hasher, writer, new DeltaOptions { RollingSearch = rolling });
        return delta.ToArray();
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void Apply_to_new_file_reproduces_the_new_file(bool rolling)
    {
        OldAndNew.Sample(t =>
        {
            var delta = MakeDelta(t.Old, t.New, rolling);
            var output = new MemoryStream();
            DeltaApplier.ApplyToNew(new MemoryStream(delta), new MemoryStream(t.Old), output);
            Assert.True(output.ToArray().AsSpan().SequenceEqual(t.New), t.Edits);
        }, iter: 300);
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void Apply_in_place_then_undo_gives_new_then_old(bool rolling)
    {
        OldAndNew.Sample(t =>
        {
            var delta = MakeDelta(t.Old, t.New, rolling);
            var file = new MemoryStream();
            file.Write(t.Old);
            var undo = new MemoryStream();
            var writer = new UndoRecordWriter(undo, t.Old.Length);
            DeltaApplier.ApplyInPlace(new MemoryStream(delta), new StreamRandomAccessFile(file), writer, undo);
            Assert.True(file.ToArray().AsSpan().SequenceEqual(t.New), "apply: " + t.Edits);

            undo.Position = 0;
            UndoRecord.Apply(undo, new StreamRandomAccessFile(file));
            Assert.True(file.ToArray().AsSpan().SequenceEqual(t.Old), "undo: " + t.Edits);
        }, iter: 300);
    }

    [Fact]
    public void Merged_undo_records_turn_the_newest_version_into_the_oldest()
    {
        Gen.Select(OldAndNew, Gen.Enum<TestFiles.Edit>(), Gen.Int).Sample((t, edit, seed) =>
        {
            var v0 = t.Old;
            var v1 = t.New;
            var v2 = TestFiles.Apply(new Random(seed), v1, edit, BlockSize);
            var file = new MemoryStream();
            file.Write(v0);
            var u0 = ApplyCapturingUndo(file, v0, v1);
            var u1 = ApplyCapturingUndo(file, v1, v2);
            Assert.True(file.ToArray().AsSpan().SequenceEqual(v2));

            var merged = new MemoryStream();
            UndoRecord.Merge(new MemoryStream(u1), new MemoryStream(u0), merged);
            merged.Position = 0;
            UndoRecord.Apply(merged, new StreamRandomAccessFile(file));
            Assert.True(file.ToArray().AsSpan().SequenceEqual(v0), $"{t.Edits} then {edit}");
        }, iter: 300);
    }

    private static byte[] ApplyCapturingUndo(MemoryStream file, byte[] from, byte[] to)
    {
        var delta = MakeDelta(from, to, rolling: false);
        var undo = new MemoryStream();
        DeltaApplier.ApplyInPlace(new MemoryStream(delta), new StreamRandomAccessFile(file), new UndoRecordWriter(undo, from.Length), undo);
        return undo.ToArray();
    }

    [Fact]
    public void Signature_round_trips_and_digest_tracks_content()
    {
        OldAndNew.Sample(t =>
        {
            var sig = Signature.Compute(new MemoryStream(t.Old), Hasher, BlockSize, weakSums: true);
            var stream = new MemoryStream();
            SignatureFormat.Write(sig, stream);
            stream.Position = 0;
            var back = SignatureFormat.Read(stream, Hasher.KeyId);
            Assert.Equal(sig.Digest(), back.Digest());
            var other = Signature.Compute(new MemoryStream(t.New), Hasher, BlockSize);
            Assert.Equal(t.Old.AsSpan().SequenceEqual(t.New), sig.Digest() == other.Digest());
        }, iter: 200);
    }

    [Fact]
    public void Unchanged_and_relocated_blocks_are_not_sent_as_literals()
    {
        var rng = new Random(7);
        var old = new byte[64 * BlockSize];
        rng.NextBytes(old);
        var @new = (byte[])old.Clone();
        old.AsSpan(5 * BlockSize, BlockSize).CopyTo(@new.AsSpan(40 * BlockSize)); // relocated cluster
        rng.NextBytes(@new.AsSpan(10 * BlockSize, BlockSize));                     // one rewritten block
        var sig = Signature.Compute(new MemoryStream(old), Hasher, BlockSize);
        var writer = new DeltaWriter(new MemoryStream(), BlockSize, old.Length);
        var stats = DeltaBuilder.Build(new MemoryStream(@new), sig, Hasher, writer);
        Assert.Equal(BlockSize, stats.LiteralBytes);
        Assert.Equal(BlockSize, stats.RelocatedBytes);
        Assert.Equal(62L * BlockSize, stats.UnchangedBytes);
    }

    [Fact]
    public void Rolling_search_finds_data_shifted_by_an_insertion()
    {
        var rng = new Random(3);
        var old = new byte[32 * BlockSize];
        rng.NextBytes(old);
        byte[] @new = [.. old.AsSpan(0, 1000), 1, 2, 3, .. old.AsSpan(1000)];
        var sig = Signature.Compute(new MemoryStream(old), Hasher, BlockSize, weakSums: true);
        var writer = new DeltaWriter(new MemoryStream(), BlockSize, old.Length);
        var off = DeltaBuilder.Build(new MemoryStream(@new), sig, Hasher, writer);
        var on = DeltaBuilder.Build(new MemoryStream(@new), sig, Hasher, new DeltaWriter(new MemoryStream(), BlockSize, old.Length), new DeltaOptions { RollingSearch = true });
        Assert.True(off.LiteralBytes >= 31 * BlockSize, $"aligned only: {off.LiteralBytes}");
        Assert.True(on.LiteralBytes <= 2 * BlockSize + 3, $"rolling: {on.LiteralBytes}");
    }
}
