using Backupd.Storage.Repository;
using Backupd.Storage.Tests.Delta;
using CsCheck;

namespace Backupd.Storage.Tests.Repository;

public class RepositoryPropertyTests
{
    /// <summary>
    /// Random histories: several backups of two files with random edits (one file sometimes left out and carried
    /// over), then random deletions of any points (the newest too) and one more backup; every remaining point restores
    /// exactly and verifies.
    /// </summary>
    [Fact]
    public void Any_history_of_backups_and_deletions_restores_every_remaining_point_exactly()
    {
        Gen.Select(Gen.Int[2, 5], Gen.Enum<TestFiles.Edit>().Array[10], Gen.Int, Gen.Int[0, 3]).Sample((backups, edits, seed, deletions) =>
        {
            using var t = new TempRepository();
            var rng = new Random(seed);
            var a = TempRepository.Content(seed, rng.Next(0, 12), rng.Next(0, 5000));
            var b = TempRepository.Content(seed + 1, rng.Next(1, 6));
            var expected = new List<(RestorePointInfo Point, byte[] A, byte[] B)>();
            for (var i = 0; i < backups; i++)
            {
                if (i > 0)
                {
                    a = TestFiles.Apply(rng, a, edits[i], TempRepository.BlockSize);
                    b = rng.Next(3) == 0 ? TestFiles.Apply(rng, b, edits[i + 5], TempRepository.BlockSize) : b;
                }
                var files = rng.Next(4) == 0 && i > 0 ? new[] { ("a", a) } : new[] { ("a", a), ("b", b) };
                var point = t.BackupAsync("g", files).GetAwaiter().GetResult();
                var lastB = files.Length == 2 ? b : expected[^1].B;
                if (files.Length == 1)
                {
                    b = lastB; // carried over: the point holds the previous version of b
                }
                expected.Add((point, a, lastB));
            }
            for (var d = 0; d < deletions && expected.Count > 1; d++)
            {
                var victim = rng.Next(expected.Count); // the newest too: its mirror goes back one version
                t.Repo.DeletePoint(expected[victim].Point.PointId);
                expected.RemoveAt(victim);
            }
            // The repository keeps working after any deletion: one more backup of a, b carried over.
            var nextA = TestFiles.Apply(rng, expected[^1].A, edits[9], TempRepository.BlockSize);
            expected.Add((t.BackupAsync("g", ("a", nextA)).GetAwaiter().GetResult(), nextA, expected[^1].B));
            foreach (var (point, ea, eb) in expected)
            {
                Assert.Equal(ea, t.RestoreAsync(point.PointId, "a").GetAwaiter().GetResult());
                Assert.Equal(eb, t.RestoreAsync(point.PointId, "b").GetAwaiter().GetResult());
            }
            var report = t.Repo.VerifyAsync(null, null, null, CancellationToken.None).GetAwaiter().GetResult();
            Assert.True(report.Ok, string.Join("\n", report.Problems));
        }, iter: 40, threads: 1);
    }
}
