using Backupd.Storage.ChangedBlocks;
using CsCheck;

namespace Backupd.Storage.Tests.ChangedBlocks;

public class ReadPlanTests
{
    private const int Bs = 16;

    private static DirtyClusters Dirty(long size, params (long Offset, long Length)[] ranges)
    {
        var b = new DirtyClusters.Builder();
        foreach (var (o, l) in ranges.OrderBy(r => r.Offset))
        {
            if (o > b.Next)
            {
                b.Add(b.Next, o - b.Next, dirty: false);
            }
            b.Add(o, l, dirty: true);
        }
        if (b.Next < size)
        {
            b.Add(b.Next, size - b.Next, dirty: false);
        }
        return b.Build(size);
    }

    private static bool[] Reads(ReadPlan p) => Enumerable.Range(0, (int)p.BlockCount).Select(i => p.MustRead(i)).ToArray();

    [Fact]
    public void Metadata_blocks_are_read_and_clean_data_blocks_are_not()
    {
        // Host file of 6 blocks: block 0 header, block 1 tables, blocks 2..5 hold guest clusters 3, 0, 1, 2.
        var maps = new[] { new GuestMapping(3 * Bs, Bs, 2 * Bs), new GuestMapping(0, 3 * Bs, 3 * Bs) };
        var plan = ReadPlan.Build(6 * Bs, Bs, maps, Dirty(4 * Bs, (Bs, Bs)));
        Assert.Equal(new[] { true, true, false, false, true, false }, Reads(plan));
        Assert.Equal(3, plan.BlocksToRead);
        Assert.Equal(3 * Bs, plan.BytesToRead);
    }

    [Fact]
    public void A_block_partly_covered_by_clean_data_is_read()
    {
        var plan = ReadPlan.Build(4 * Bs, Bs, [new GuestMapping(0, 2 * Bs, Bs + 4)], Dirty(2 * Bs));
        Assert.Equal(new[] { true, true, false, true }, Reads(plan));
    }

    [Fact]
    public void Host_bytes_claimed_by_two_guest_ranges_are_read_even_when_both_are_clean()
    {
        var maps = new[] { new GuestMapping(0, 4 * Bs, 0), new GuestMapping(8 * Bs, Bs, 2 * Bs) };
        var plan = ReadPlan.Build(4 * Bs, Bs, maps, Dirty(16 * Bs));
        Assert.Equal(new[] { false, false, true, false }, Reads(plan));
    }

    [Fact]
    public void Guest_ranges_beyond_the_dirty_map_count_as_dirty()
    {
        var plan = ReadPlan.Build(4 * Bs, Bs, [new GuestMapping(0, 4 * Bs, 0)], Dirty(2 * Bs));
        Assert.Equal(new[] { false, false, true, true }, Reads(plan));
    }

    [Fact]
    public void The_short_last_block_is_clean_when_all_its_bytes_are()
    {
        var plan = ReadPlan.Build((3 * Bs) + 5, Bs, [new GuestMapping(0, 3 * Bs, 0), new GuestMapping(5 * Bs, 5, 3 * Bs)], Dirty(6 * Bs));
        Assert.Equal(new[] { false, false, false, false }, Reads(plan));
        Assert.Equal(0, plan.BytesToRead);
        Assert.True(plan.MustRead(4)); // past the end: always read
        Assert.True(plan.MustRead(-1));
    }

    [Fact]
    public void Nonsense_mappings_are_refused()
    {
        Assert.Throws<ArgumentException>(() => ReadPlan.Build(4 * Bs, Bs, [new GuestMapping(0, 0, 0)], Dirty(Bs)));
        Assert.Throws<ArgumentException>(() => ReadPlan.Build(4 * Bs, Bs, [new GuestMapping(0, Bs, -1)], Dirty(Bs)));
    }

    /// <summary>
    /// Random qcow2-like layouts (clusters of a quarter, one or four blocks, placed anywhere, some shared, some unaligned)
    /// and random dirty ranges: a block is skipped exactly when each of its bytes is covered once, by clean guest data.
    /// </summary>
    [Fact]
    public void Any_layout_skips_exactly_the_blocks_whose_every_byte_is_clean_guest_data()
    {
        Gen.Select(Gen.Int[1, 60], Gen.OneOfConst(Bs / 4, Bs, 4 * Bs), Gen.Int, Gen.Int[0, 8]).Sample((hostBlocks, cluster, seed, dirtyCount) =>
        {
            var rng = new Random(seed);
            var fileLength = (hostBlocks * Bs) - (rng.Next(3) == 0 ? rng.Next(Bs) : 0);
            var guestSize = (long)cluster * rng.Next(1, 40);
            var maps = new List<GuestMapping>();
            for (long g = 0; g < guestSize; g += cluster)
            {
                if (rng.Next(3) == 0)
                {
                    continue; // unallocated
                }
                var host = rng.Next(4) == 0 ? rng.Next(fileLength) : (long)rng.Next(fileLength / cluster + 1) * cluster;
                maps.Add(new GuestMapping(g, cluster, host));
            }
            var dirtyRanges = new List<(long, long)>();
            for (var i = 0; i < dirtyCount; i++)
            {
                var o = rng.NextInt64(guestSize);
                dirtyRanges.Add((o, Math.Min(guestSize - o, rng.Next(1, 3 * cluster))));
            }
            var covered = rng.Next(5) == 0 ? guestSize / 2 : guestSize; // sometimes a map that stopped short
            var dirty = Dirty(covered, [.. Merge(dirtyRanges).Where(r => r.Item1 < covered).Select(r => (r.Item1, Math.Min(r.Item2, covered - r.Item1)))]);
            var plan = ReadPlan.Build(fileLength, Bs, maps, dirty);

            // Brute force: per host byte, how many mappings cover it and whether the guest byte is clean.
            var cover = new int[fileLength];
            var clean = new bool[fileLength];
            foreach (var m in maps)
            {
                for (long k = 0; k < m.Length && m.HostOffset + k < fileLength; k++)
                {
                    cover[m.HostOffset + k]++;
                    clean[m.HostOffset + k] = !dirty.AnyDirty(m.GuestOffset + k, 1);
                }
            }
            long toRead = 0, bytes = 0;
            for (var b = 0; b < plan.BlockCount; b++)
            {
                var from = b * Bs;
                var to = Math.Min(fileLength, from + Bs);
                var skip = Enumerable.Range(from, to - from).All(x => cover[x] == 1 && clean[x]);
                // A byte shared by two mappings makes its whole block read; the plan may read more than brute force only there.
                Assert.Equal(!skip, plan.MustRead(b));
                if (!skip)
                {
                    toRead++;
                    bytes += to - from;
                }
            }
            Assert.Equal(toRead, plan.BlocksToRead);
            Assert.Equal(bytes, plan.BytesToRead);
        });
    }

    private static List<(long, long)> Merge(List<(long Offset, long Length)> ranges)
    {
        var result = new List<(long, long)>();
        foreach (var (o, l) in ranges.OrderBy(r => r.Offset))
        {
            if (result.Count > 0 && result[^1].Item1 + result[^1].Item2 >= o)
            {
                var (po, pl) = result[^1];
                result[^1] = (po, Math.Max(pl, o + l - po));
            }
            else
            {
                result.Add((o, l));
            }
        }
        return result;
    }
}
