using Backupd.Storage.Repository;
using CsCheck;

namespace Backupd.Storage.Tests.Repository;

/// <summary>
/// The mirror scrub (docs/repository-format.md, "Mirror scrub"): real repositories on disk, a byte flipped in the mirror
/// as bit rot would, then backups that must find it, heal it from the source and say which points it had damaged.
/// </summary>
public sealed class MirrorScrubTests
{
    private const int Bs = TempRepository.BlockSize;

    /// <summary>Random non-zero blocks (so every block is data and has a tag).</summary>
    private static byte[] Blocks(int seed, int blocks)
    {
        var data = new byte[blocks * Bs];
        new Random(seed).NextBytes(data);
        for (var i = 0; i < data.Length; i += 512)
        {
            data[i] |= 1;
        }
        return data;
    }

    /// <summary>A copy with the given blocks overwritten by other random bytes.</summary>
    private static byte[] WithBlocksChanged(byte[] old, int seed, params int[] blocks)
    {
        var copy = (byte[])old.Clone();
        var rng = new Random(seed);
        foreach (var b in blocks)
        {
            rng.NextBytes(copy.AsSpan(b * Bs, Bs));
            copy[b * Bs] |= 1;
        }
        return copy;
    }

    private static string Mirror(TempRepository t, string group, string key) => Path.Combine(t.RepoDir, "groups", group, "files", key, "mirror");

    private static string DamageFile(TempRepository t, string group, string key) => Path.Combine(t.RepoDir, "groups", group, "files", key, "damage.json");

    private static void FlipByte(string path, long offset)
    {
        using var fs = new FileStream(path, FileMode.Open, FileAccess.ReadWrite);
        fs.Position = offset;
        var b = fs.ReadByte();
        fs.Position = offset;
        fs.WriteByte((byte)(b ^ 0x40));
    }

    private static async Task AssertEveryPointRestores(TempRepository t, IEnumerable<(RestorePointInfo Point, byte[] Content)> points)
    {
        foreach (var (point, content) in points)
        {
            Assert.Equal(content, await t.RestoreAsync(point.PointId, "f"));
        }
        var report = await t.Repo.VerifyAsync(null, null, null, CancellationToken.None);
        Assert.True(report.Ok, string.Join("; ", report.Problems));
    }

    [Fact]
    public async Task Without_the_scrub_a_flipped_mirror_byte_is_inherited_by_the_next_point()
    {
        // The failure the scrub exists for (issue 16, item 7): shown here so the tests below prove a change.
        using var t = new TempRepository();
        t.Repo.ScrubCycle = 0;
        var v1 = Blocks(1, 16);
        await t.BackupAsync("g", ("f", v1));
        FlipByte(Mirror(t, "g", "f"), (5 * Bs) + 17);
        var p2 = await t.BackupAsync("g", ("f", WithBlocksChanged(v1, 2, 9)));
        Assert.Null(Assert.Single(p2.Files).Scrub?.Describe("f"));
        await Assert.ThrowsAsync<RepositoryCorruptException>(() => t.RestoreAsync(p2.PointId, "f"));
    }

    [Fact]
    public async Task A_flipped_mirror_byte_is_healed_by_the_next_backup_and_every_point_restores_byte_identical()
    {
        using var t = new TempRepository();
        t.Repo.ScrubCycle = 1; // every unchanged block, every run
        var v1 = Blocks(10, 16);
        var v2 = WithBlocksChanged(v1, 11, 2);      // block 2 changed: the undo record of v1 covers it
        var v3 = WithBlocksChanged(v2, 12, 9);      // block 9 changed
        var p1 = await t.BackupAsync("g", ("f", v1));
        var p2 = await t.BackupAsync("g", ("f", v2));
        FlipByte(Mirror(t, "g", "f"), (7 * Bs) + 100); // block 7: unchanged since v1, so p1 and p2 both read it from the mirror
        FlipByte(Mirror(t, "g", "f"), (2 * Bs) + 3);   // block 2: p1 reads it from v1's undo record, only p2 from the mirror
        await Assert.ThrowsAsync<RepositoryCorruptException>(() => t.RestoreAsync(p1.PointId, "f"));

        var p3 = await t.BackupAsync("g", ("f", v3));

        var scrub = Assert.Single(p3.Files).Scrub!;
        Assert.Equal([2L, 7L], scrub.HealedBlocks);
        Assert.Empty(scrub.SupersededBlocks);
        Assert.Equal([p1.PointId, p2.PointId], scrub.PointsAffected);
        Assert.Equal(15, scrub.BlocksChecked); // all but the changed block 9
        var message = scrub.Describe("f")!;
        Assert.Contains("healed 2 damaged mirror block(s) of 'f'", message);
        Assert.Contains($"{p1.PointId} .. {p2.PointId}", message);
        Assert.Equal(v3, File.ReadAllBytes(Mirror(t, "g", "f")));
        await AssertEveryPointRestores(t, [(p1, v1), (p2, v2), (p3, v3)]);
    }

    [Fact]
    public async Task A_damaged_block_covered_by_the_newest_undo_record_affects_only_the_newest_points()
    {
        using var t = new TempRepository();
        t.Repo.ScrubCycle = 1;
        var v1 = Blocks(20, 8);
        var v2 = WithBlocksChanged(v1, 21, 4);
        var p1 = await t.BackupAsync("g", ("f", v1));
        var p2 = await t.BackupAsync("g", ("f", v2));
        var p3 = await t.BackupAsync("g", ("f", v2)); // unchanged: refers to p2's version
        FlipByte(Mirror(t, "g", "f"), (4 * Bs) + 1);

        var p4 = await t.BackupAsync("g", ("f", v2));

        var scrub = Assert.Single(p4.Files).Scrub!;
        Assert.Equal([4L], scrub.HealedBlocks);
        Assert.Equal([p2.PointId, p3.PointId], scrub.PointsAffected); // p1 reads block 4 from v1's undo record
        await AssertEveryPointRestores(t, [(p1, v1), (p2, v2), (p3, v2), (p4, v2)]);
    }

    [Fact]
    public async Task Verify_lists_the_bad_blocks_and_the_next_backup_heals_them_with_the_sample_off()
    {
        using var t = new TempRepository();
        t.Repo.ScrubCycle = 0; // only verify's list
        var v1 = Blocks(30, 12);
        var p1 = await t.BackupAsync("g", ("f", v1));
        FlipByte(Mirror(t, "g", "f"), (3 * Bs) + 9);
        FlipByte(Mirror(t, "g", "f"), (10 * Bs) + 2000);

        var report = await t.Repo.VerifyAsync("g", null, null, CancellationToken.None);
        Assert.False(report.Ok);
        Assert.Contains("block 3 ", Assert.Single(report.Problems));
        Assert.Contains("2 bad blocks in all", report.Problems[0]);
        Assert.True(File.Exists(DamageFile(t, "g", "f")), "verify records the bad blocks for the next backup");

        var p2 = await t.BackupAsync("g", ("f", v1));

        var scrub = Assert.Single(p2.Files).Scrub!;
        Assert.Equal([3L, 10L], scrub.HealedBlocks);
        Assert.Equal(2, scrub.BlocksChecked); // the sample is off: only the two listed blocks were read
        Assert.Equal([p1.PointId], scrub.PointsAffected);
        Assert.False(File.Exists(DamageFile(t, "g", "f")), "a committed backup that re-checked the listed blocks removes the list");
        await AssertEveryPointRestores(t, [(p1, v1), (p2, v1)]);
    }

    [Fact]
    public async Task A_listed_block_that_changed_in_the_source_is_reported_as_not_healable()
    {
        using var t = new TempRepository();
        t.Repo.ScrubCycle = 0;
        var v1 = Blocks(40, 6);
        var v2 = WithBlocksChanged(v1, 41, 1);
        var p1 = await t.BackupAsync("g", ("f", v1));
        FlipByte(Mirror(t, "g", "f"), (1 * Bs) + 5);
        Assert.False((await t.Repo.VerifyAsync("g", null, null, CancellationToken.None)).Ok);

        var p2 = await t.BackupAsync("g", ("f", v2));

        var scrub = Assert.Single(p2.Files).Scrub!;
        Assert.Empty(scrub.HealedBlocks);
        Assert.Equal([1L], scrub.SupersededBlocks);
        Assert.Equal([p1.PointId], scrub.PointsAffected);
        Assert.Contains("could not be healed", scrub.Describe("f"));
        Assert.Equal(v2, await t.RestoreAsync(p2.PointId, "f"));
        await Assert.ThrowsAsync<RepositoryCorruptException>(() => t.RestoreAsync(p1.PointId, "f")); // the damage moved into p1's undo record
    }

    [Fact]
    public async Task A_cycle_of_backups_heals_damage_anywhere_in_the_mirror_a_share_per_run()
    {
        using var t = new TempRepository();
        const int cycle = 4;
        t.Repo.ScrubCycle = cycle;
        var stripe = (int)MirrorScrub.StripeBlocksFor(Bs);
        var stripes = 2 * cycle;
        var v1 = Blocks(50, stripes * stripe);
        var p1 = await t.BackupAsync("g", ("f", v1));
        for (var s = 0; s < stripes; s++)
        {
            FlipByte(Mirror(t, "g", "f"), (((long)s * stripe) + 3) * Bs); // one damaged block in every stripe
        }

        long healed = 0, checkedBlocks = 0;
        var points = new List<(RestorePointInfo, byte[])> { (p1, v1) };
        for (var run = 1; run <= cycle; run++)
        {
            var p = await t.BackupAsync("g", ("f", v1));
            var scrub = Assert.Single(p.Files).Scrub!;
            Assert.Equal(stripes / cycle, scrub.HealedBlocks.Count); // each run reaches its share of the stripes, no more
            healed += scrub.HealedBlocks.Count;
            checkedBlocks += scrub.BlocksChecked;
            points.Add((p, v1));
        }
        Assert.Equal(stripes, healed);
        Assert.Equal(v1.Length / Bs, checkedBlocks); // every block exactly once in the cycle
        await AssertEveryPointRestores(t, points);
    }

    [Fact]
    public void In_any_cycle_of_consecutive_runs_every_block_is_sampled_exactly_once()
    {
        Gen.Select(Gen.Int[1, 200], Gen.Long[0, 1L << 40], Gen.Long[0, 1L << 40], Gen.Int[0, 12]).Sample((cycle, block, firstRun, stripeLog) =>
        {
            var stripe = 1L << stripeLog;
            var runs = new List<long>();
            for (var run = firstRun; run < firstRun + cycle; run++)
            {
                if (MirrorScrub.Sampled(block, stripe, run, cycle))
                {
                    runs.Add(run);
                }
            }
            Assert.True(runs.Count == 1, $"block {block}, stripe {stripe}, cycle {cycle}, runs {firstRun}..: sampled in {runs.Count} runs");
        });
    }
}
