using Backupd.Storage.Delta;
using Backupd.Storage.Repository;
using Backupd.Storage.Tests.Delta;

namespace Backupd.Storage.Tests.Repository;

/// <summary>Compressed undo records in a repository: the saving reported, older points restored, version 1 records still used.</summary>
public class UndoCompressionRepositoryTests
{
    private static byte[] Text(int seed) => TestFiles.Compressible(new Random(seed), 60 * TempRepository.BlockSize + 333, TempRepository.BlockSize);

    private static byte[] Rewritten(byte[] v, int seed)
    {
        var copy = (byte[])v.Clone();
        var rng = new Random(seed);
        for (var b = 0; b < 60; b += 4)
        {
            rng.NextBytes(copy.AsSpan(b * TempRepository.BlockSize, TempRepository.BlockSize));
        }
        return copy;
    }

    [Fact]
    public async Task The_saving_is_reported_and_the_older_point_restores_from_the_compressed_record()
    {
        using var t = new TempRepository();
        var v0 = Text(1);
        var v1 = Rewritten(v0, 2);
        var p0 = await t.BackupAsync("g", ("disk", v0));
        var p1 = await t.BackupAsync("g", ("disk", v1));
        var f = p1.Files.Single();
        Assert.True(f.UndoBytesWritten * 2 < f.UndoBytesUncompressed, $"undo {f.UndoBytesWritten} of {f.UndoBytesUncompressed}");
        var undo = Directory.GetFiles(Path.Combine(t.RepoDir, "groups", "g", "files", "disk", "undo")).Single();
        Assert.Equal(new FileInfo(undo).Length, f.UndoBytesWritten);
        Assert.Equal(0, p0.Files.Single().UndoBytesUncompressed);
        Assert.Equal(v0, await t.RestoreAsync(p0.PointId, "disk"));
        Assert.Equal(v1, await t.RestoreAsync(p1.PointId, "disk"));
        var report = await t.Repo.VerifyAsync(null, null, null, CancellationToken.None);
        Assert.True(report.Ok, string.Join("\n", report.Problems));
        // A point without an undo record does not carry the field: documents written before it existed keep their bytes (and MAC).
        var doc = File.ReadAllText(Path.Combine(t.RepoDir, "groups", "g", "points", $"{p0.PointId}.json"));
        Assert.DoesNotContain("undoBytesUncompressed", doc, StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_version_1_undo_record_written_by_an_older_release_still_restores_and_verifies()
    {
        using var t = new TempRepository();
        var v0 = Text(3);
        var v1 = Rewritten(v0, 4);
        var v2 = Rewritten(v1, 5);
        var p0 = await t.BackupAsync("g", ("disk", v0));
        var p1 = await t.BackupAsync("g", ("disk", v1));
        var undoDir = Path.Combine(t.RepoDir, "groups", "g", "files", "disk", "undo");
        var record = Directory.GetFiles(undoDir).Single();
        // Rewrite the record as version 1, entry by entry, as releases before version 2 wrote it.
        var v1Bytes = new MemoryStream();
        using (var reader = new UndoRecordReader(new MemoryStream(File.ReadAllBytes(record))))
        {
            Assert.Equal(UndoRecord.Version, reader.Version);
            var writer = new UndoRecordWriter(v1Bytes, reader.TargetLength, compress: false);
            while (reader.TryRead(out var e))
            {
                if (e.Kind == UndoEntryKind.Zero)
                {
                    writer.AddZero(e.Offset, e.Length);
                }
                else
                {
                    writer.AddData(e.Offset, e.Data.Span);
                }
            }
            writer.Complete();
        }
        File.WriteAllBytes(record, v1Bytes.ToArray());
        Assert.Equal(UndoRecord.UncompressedVersion, BitConverter.ToUInt16(File.ReadAllBytes(record), 8));

        var p2 = await t.BackupAsync("g", ("disk", v2)); // a new version 2 record next to the old one
        Assert.Equal(v0, await t.RestoreAsync(p0.PointId, "disk"));
        Assert.Equal(v1, await t.RestoreAsync(p1.PointId, "disk"));
        Assert.Equal(v2, await t.RestoreAsync(p2.PointId, "disk"));
        var report = await t.Repo.VerifyAsync(null, null, null, CancellationToken.None);
        Assert.True(report.Ok, string.Join("\n", report.Problems));
        t.Repo.DeletePoint(p1.PointId); // merges the version 2 record into the version 1 one
        Assert.Equal(v0, await t.RestoreAsync(p0.PointId, "disk"));
        Assert.Equal(v2, await t.RestoreAsync(p2.PointId, "disk"));
    }
}
