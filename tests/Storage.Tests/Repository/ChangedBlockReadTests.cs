using Backupd.Storage.ChangedBlocks;
using Backupd.Storage.Delta;
using Backupd.Storage.Repository;
using CsCheck;

namespace Backupd.Storage.Tests.Repository;

/// <summary>The incremental read of BackupSession: what a changed-block plan lets it skip, and when it refuses the plan.</summary>
public class ChangedBlockReadTests
{
    private const int Bs = TempRepository.BlockSize;

    /// <summary>A raw-like file (guest offset = host offset) whose plan reads exactly <paramref name="dirtyBlocks"/>.</summary>
    private static ReadPlan Plan(long length, HashSet<long> dirtyBlocks, int blockSize = Bs)
    {
        var b = new DirtyClusters.Builder();
        for (long o = 0; o < length; o += blockSize)
        {
            b.Add(o, Math.Min(blockSize, length - o), dirtyBlocks.Contains(o / blockSize));
        }
        return ReadPlan.Build(length, blockSize, length == 0 ? [] : [new GuestMapping(0, length, 0)], b.Build(length));
    }

    private static async Task<(RestorePointInfo Point, FileVersionInfo File)> Backup(TempRepository t, byte[] content, ChangedBlockRead? changed)
    {
        using var session = t.Repo.BeginBackup("g", "vm-g");
        var src = t.WriteSource("src-vda", content);
        var file = await session.AddFileAsync("vda", src, new SourceFileInfo(src, "raw", null, content.Length), null, CancellationToken.None, changed: changed);
        return (session.Commit(), file);
    }

    private static string DigestOf(TempRepository t, byte[] content) => Signature.Compute(new MemoryStream(content), t.Repo.Hasher, Bs).Digest();

    private static long Blocks(long length) => (length + Bs - 1) / Bs;

    private static int Len(long length, long block) => (int)Math.Min(Bs, length - (block * Bs));

    private static void Flip(byte[] data, long block) => data[block * Bs] ^= 0x5A;

    /// <summary>
    /// Random files, random changes inside the plan (rewritten, zeroed, grown at the end), random extra dirty blocks:
    /// the incremental backup equals a full backup of the same history in every way that matters — restored bytes,
    /// digest, mirror file, blocks changed — and reads at most the planned blocks (plus the blocks past the old end).
    /// </summary>
    [Fact]
    public void Changes_only_in_planned_blocks_give_the_full_result_byte_for_byte()
    {
        Gen.Select(Gen.Int[1, 30], Gen.Int[0, Bs - 1], Gen.Int[0, 3], Gen.Int).Sample((blocks, tail, grow, seed) =>
        {
            var rng = new Random(seed);
            var v0 = TempRepository.Content(seed, blocks, tail);
            var v1 = (byte[])v0.Clone();
            var dirty = new HashSet<long>();
            for (long b = 0; b < Blocks(v0.Length); b++)
            {
                var r = rng.Next(10);
                if (r < 3)
                {
                    if (r == 0)
                    {
                        Array.Clear(v1, (int)(b * Bs), Len(v1.Length, b));
                    }
                    else
                    {
                        rng.NextBytes(v1.AsSpan((int)(b * Bs), Len(v1.Length, b)));
                    }
                    dirty.Add(b);
                }
                else if (r == 3)
                {
                    dirty.Add(b); // marked dirty but not rewritten (a write of the same bytes)
                }
            }
            var extra = new byte[grow * Bs];
            rng.NextBytes(extra);
            v1 = [.. v1, .. extra]; // blocks past the old end are read whatever the plan says
            var plan = Plan(v1.Length, dirty);

            using var inc = new TempRepository();
            using var full = new TempRepository();
            var (p0, _) = Backup(inc, v0, null).GetAwaiter().GetResult();
            Backup(full, v0, null).GetAwaiter().GetResult();
            var (p1, f) = Backup(inc, v1, new ChangedBlockRead(plan, false, p0.PointId)).GetAwaiter().GetResult();
            var (q1, g) = Backup(full, v1, null).GetAwaiter().GetResult();

            Assert.Equal(ReadModes.Incremental, f.ReadMode);
            Assert.Null(f.FullReadReason);
            Assert.Equal(ReadModes.Full, g.ReadMode);
            Assert.Equal(v1, inc.RestoreAsync(p1.PointId, "vda").GetAwaiter().GetResult());
            Assert.Equal(v0, inc.RestoreAsync(p0.PointId, "vda").GetAwaiter().GetResult());
            Assert.Equal(DigestOf(inc, v1), f.Digest);
            Assert.Equal(DigestOf(full, v1), g.Digest);
            Assert.Equal(g.BlocksChanged, f.BlocksChanged);
            Assert.Equal(g.MirrorBytesWritten, f.MirrorBytesWritten);
            Assert.Equal(File.ReadAllBytes(full.Repo.Layout.Mirror("g", "vda")), File.ReadAllBytes(inc.Repo.Layout.Mirror("g", "vda")));
            Assert.True(inc.Repo.VerifyAsync(null, null, null, CancellationToken.None).GetAwaiter().GetResult().Ok);

            // Honest bytes read: only blocks that were read count, and a block the plan skipped was not read.
            long readable = 0, readableData = 0;
            for (long b = 0; b < Blocks(v1.Length); b++)
            {
                if (plan.MustRead(b) || b >= Blocks(v0.Length) || Len(v0.Length, b) != Len(v1.Length, b))
                {
                    readable += Len(v1.Length, b);
                    readableData += v1.AsSpan((int)(b * Bs), Len(v1.Length, b)).ContainsAnyExcept((byte)0) ? Len(v1.Length, b) : 0;
                }
            }
            Assert.InRange(f.BytesRead, readableData, readable);
            Assert.True(g.BytesRead >= f.BytesRead);
        }, iter: 40);
    }

    /// <summary>
    /// Blocks changed outside the plan (the bitmap missed writes): the safety net reads everything, stores the right
    /// content and counts exactly those blocks; the incremental read of the same plan really skips them (its mirror
    /// keeps the old bytes there), which is what the count exists to catch.
    /// </summary>
    [Fact]
    public void Changes_outside_the_plan_are_counted_by_the_safety_net()
    {
        Gen.Select(Gen.Int[4, 30], Gen.Int[1, 4], Gen.Int).Sample((blocks, missed, seed) =>
        {
            var rng = new Random(seed);
            var v0 = TempRepository.Content(seed, blocks);
            var v1 = (byte[])v0.Clone();
            var order = Enumerable.Range(0, blocks).Select(i => (long)i).OrderBy(_ => rng.Next()).ToList();
            var dirty = order.Take(2).ToHashSet();
            var outside = order.Skip(2).Take(missed).ToList();
            foreach (var b in dirty.Concat(outside))
            {
                Flip(v1, b);
            }
            var plan = Plan(v1.Length, dirty);

            using var net = new TempRepository();
            var (p0, _) = Backup(net, v0, null).GetAwaiter().GetResult();
            var (p1, f) = Backup(net, v1, new ChangedBlockRead(plan, SafetyNet: true, p0.PointId)).GetAwaiter().GetResult();
            Assert.Equal(ReadModes.SafetyNet, f.ReadMode);
            Assert.Equal(outside.Count, f.CleanButChanged);
            Assert.Equal(v1, net.RestoreAsync(p1.PointId, "vda").GetAwaiter().GetResult());
            Assert.Equal(DigestOf(net, v1), f.Digest);
            Assert.Equal(ReadModes.SafetyNet, net.Repo.FindPoint(p1.PointId)!.Files.Single().ReadMode); // recorded in the point

            using var inc = new TempRepository();
            var (i0, _) = Backup(inc, v0, null).GetAwaiter().GetResult();
            var (i1, h) = Backup(inc, v1, new ChangedBlockRead(plan, false, i0.PointId)).GetAwaiter().GetResult();
            Assert.Equal(0, h.CleanButChanged);
            var restored = inc.RestoreAsync(i1.PointId, "vda").GetAwaiter().GetResult();
            for (long b = 0; b < blocks; b++)
            {
                var same = restored.AsSpan((int)(b * Bs), Bs).SequenceEqual(v1.AsSpan((int)(b * Bs), Bs));
                Assert.Equal(!outside.Contains(b), same);
            }
        }, iter: 20);
    }

    [Fact]
    public async Task Zero_when_the_plan_was_right()
    {
        using var t = new TempRepository();
        var v0 = TempRepository.Content(3, 12);
        var v1 = (byte[])v0.Clone();
        Flip(v1, 5);
        var (p0, _) = await Backup(t, v0, null);
        var (_, f) = await Backup(t, v1, new ChangedBlockRead(Plan(v1.Length, new HashSet<long> { 5, 7 }), true, p0.PointId));
        Assert.Equal(ReadModes.SafetyNet, f.ReadMode);
        Assert.Equal(0, f.CleanButChanged);
        Assert.Equal(1, f.BlocksChanged);
    }

    public static TheoryData<string, string> Unusable => new()
    {
        { "other-version", "but the bitmap started recording at version other" },
        { "shrank", "the file shrank from" },
        { "block-size", "the plan has blocks of 8192 bytes, the repository keeps 'vda' in blocks of 4096" },
        { "length", "the plan was made for" },
    };

    [Theory]
    [MemberData(nameof(Unusable))]
    public async Task A_plan_that_does_not_fit_the_mirror_is_not_used_and_the_reason_is_kept(string kind, string reason)
    {
        using var t = new TempRepository();
        var v0 = TempRepository.Content(11, 10);
        var v1 = (byte[])v0.Clone();
        for (var b = 0; b < 10; b++)
        {
            Flip(v1, b); // every block changed: a plan used by mistake would leave old bytes in the mirror
        }
        if (kind == "shrank")
        {
            v1 = v1[..(8 * Bs)];
        }
        var (p0, _) = await Backup(t, v0, null);
        var plan = kind switch
        {
            "block-size" => Plan(v1.Length, new HashSet<long>(), 2 * Bs),
            "length" => Plan(v1.Length + Bs, new HashSet<long>()),
            _ => Plan(v1.Length, new HashSet<long>()),
        };
        var (p1, f) = await Backup(t, v1, new ChangedBlockRead(plan, kind == "length", kind == "other-version" ? "other" : p0.PointId));
        Assert.Equal(ReadModes.Full, f.ReadMode);
        Assert.Contains(reason, f.FullReadReason);
        Assert.Equal(0, f.CleanButChanged);
        Assert.Equal(v1.Length, f.BytesRead); // dense content: everything was read
        Assert.Equal(v1, await t.RestoreAsync(p1.PointId, "vda"));
        var stored = t.Repo.FindPoint(p1.PointId)!.Files.Single();
        Assert.Equal(ReadModes.Full, stored.ReadMode);
        Assert.Equal(f.FullReadReason, stored.FullReadReason);
    }

    [Fact]
    public async Task The_first_backup_of_a_file_reads_it_fully_and_says_why()
    {
        using var t = new TempRepository();
        var v0 = TempRepository.Content(5, 6);
        var (p0, f) = await Backup(t, v0, new ChangedBlockRead(Plan(v0.Length, new HashSet<long>()), false, "whatever"));
        Assert.Equal(ReadModes.Full, f.ReadMode);
        Assert.Contains("no earlier version of 'vda'", f.FullReadReason);
        Assert.Equal(v0, await t.RestoreAsync(p0.PointId, "vda"));
    }

    [Fact]
    public async Task A_damaged_mirror_block_the_plan_calls_clean_is_read_and_healed()
    {
        using var t = new TempRepository();
        t.Repo.ScrubCycle = 0; // only listed blocks
        var v0 = new byte[8 * Bs];
        new Random(9).NextBytes(v0);
        var (p0, _) = await Backup(t, v0, null);
        var mirror = t.Repo.Layout.Mirror("g", "vda");
        using (var fs = new FileStream(mirror, FileMode.Open, FileAccess.ReadWrite))
        {
            fs.Position = (3 * Bs) + 7;
            fs.WriteByte((byte)(v0[(3 * Bs) + 7] ^ 1));
        }
        DamageList.Write(t.Repo.Beneath, t.Repo.Layout, "g", "vda", p0.PointId, Bs, [3]);
        var v1 = (byte[])v0.Clone();
        Flip(v1, 6);
        var (p1, f) = await Backup(t, v1, new ChangedBlockRead(Plan(v1.Length, new HashSet<long> { 6 }), false, p0.PointId));
        Assert.Equal(ReadModes.Incremental, f.ReadMode);
        Assert.Equal(new long[] { 3 }, f.Scrub!.HealedBlocks);
        Assert.Equal(2L * Bs, f.BytesRead); // block 6 (planned) and block 3 (listed damaged)
        Assert.Equal(v1, await t.RestoreAsync(p1.PointId, "vda"));
    }
}
