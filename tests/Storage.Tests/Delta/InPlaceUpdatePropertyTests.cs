using Backupd.Storage.Delta;
using CsCheck;

namespace Backupd.Storage.Tests.Delta;

/// <summary>Random edits of random files: the in-place update, its undo records and the signature format hold for all of them.</summary>
public class InPlaceUpdatePropertyTests
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

    [Fact]
    public void Update_in_place_then_undo_gives_new_then_old()
    {
        OldAndNew.Sample(t =>
        {
            var file = new MemoryStream();
            file.Write(t.Old);
            var undo = new MemoryStream();
            InPlaceUpdate.Apply(file, t.Old, t.New, Hasher, BlockSize, undo);
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
        var undo = new MemoryStream();
        InPlaceUpdate.Apply(file, from, to, Hasher, BlockSize, undo);
        return undo.ToArray();
    }

    [Fact]
    public void Signature_round_trips_and_digest_tracks_content()
    {
        OldAndNew.Sample(t =>
        {
            var sig = Signature.Compute(new MemoryStream(t.Old), Hasher, BlockSize);
            var stream = new MemoryStream();
            SignatureFormat.Write(sig, stream);
            stream.Position = 0;
            var back = SignatureFormat.Read(stream, Hasher.KeyId);
            Assert.Equal(sig.Digest(), back.Digest());
            var other = Signature.Compute(new MemoryStream(t.New), Hasher, BlockSize);
            Assert.Equal(t.Old.AsSpan().SequenceEqual(t.New), sig.Digest() == other.Digest());
        }, iter: 200);
    }
}
