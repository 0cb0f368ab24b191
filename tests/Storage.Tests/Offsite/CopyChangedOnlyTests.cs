using Backupd.Storage.Offsite;
using Backupd.Storage.Repository;
using Backupd.Storage.Tests.Repository;

namespace Backupd.Storage.Tests.Offsite;

/// <summary>
/// A copy of the newest point, when the target holds the copy of an earlier point of the same group: only the chunks
/// the undo records say changed are read; the rest keep the earlier copy's ids. Every result is held equal to a full
/// read (the restored bytes, and the copy's file digest, which covers every chunk id).
/// </summary>
public sealed class CopyChangedOnlyTests : IDisposable
{
    private const int Block = TempRepository.BlockSize;
    private const int Chunk = 4 * Block; // several local blocks per chunk, as with the real 256 KiB chunks
    private readonly TempRepository _local = new();
    private readonly OffsiteKey _key = OffsiteKey.Generate();

    public void Dispose() => Directory.Delete(_local.Root, recursive: true);

    private CopyRepository OpenCopy(string name = "copy") =>
        CopyRepository.Open(LocalChunkStore.Open(Path.Combine(_local.Root, name), false), _key, create: true, chunkSize: Chunk);

    private CopyReport CopyPoint(CopyRepository copy, string pointId) => copy.Copy(_local.Repo, pointId, null, CancellationToken.None);

    private byte[] Restore(CopyRepository copy, string pointId)
    {
        var target = Path.Combine(_local.Root, $"restored-{Guid.NewGuid():N}");
        copy.RestoreFile(pointId, "vda.0", target, null, CancellationToken.None);
        var bytes = File.ReadAllBytes(target);
        File.Delete(target);
        return bytes;
    }

    /// <summary>The copy's digest of the file as a full read into a fresh target gives it.</summary>
    private string FullReadDigest(string pointId)
    {
        using var fresh = OpenCopy($"fresh-{Guid.NewGuid():N}");
        var report = CopyPoint(fresh, pointId);
        Assert.Equal(0, report.ChunksUnchanged);
        return fresh.ReadHeader(pointId).Files.Single().Digest;
    }

    private static byte[] Noise(int seed, int blocks, int extra = 0)
    {
        var content = new byte[(blocks * Block) + extra];
        new Random(seed).NextBytes(content);
        return content;
    }

    [Fact]
    public async Task An_incremental_copy_reads_only_the_chunks_whose_blocks_changed()
    {
        var first = Noise(1, 64);
        Array.Clear(first, 20 * Block, 8 * Block); // two zero chunks
        var p1 = await _local.BackupAsync("g1", ("vda.0", first));
        using var copy = OpenCopy();
        var full = CopyPoint(copy, p1.PointId);
        Assert.Equal(0, full.ChunksUnchanged);
        Assert.Equal(first.Length, full.BytesRead);

        var second = first.ToArray();
        second[5 * Block + 17] ^= 0x5A; // chunk 1
        second[(40 * Block) + Block - 1] ^= 0x01; // chunk 10, last byte of its block 0
        second[21 * Block] = 7; // chunk 5, a zero chunk that now holds data
        var p2 = await _local.BackupAsync("g1", ("vda.0", second));
        var incremental = CopyPoint(copy, p2.PointId);

        Assert.Equal(16, incremental.Chunks);
        Assert.Equal(13, incremental.ChunksUnchanged);
        Assert.Equal(3 * Chunk, incremental.BytesRead);
        Assert.Equal(3, incremental.ChunksSent);
        Assert.Equal(second, Restore(copy, p2.PointId));
        Assert.Equal(first, Restore(copy, p1.PointId));
        Assert.Equal(FullReadDigest(p2.PointId), copy.ReadHeader(p2.PointId).Files.Single().Digest);
        Assert.True(copy.Verify(readData: true, CancellationToken.None).Ok);
    }

    [Fact]
    public async Task Shrinking_then_growing_through_a_point_not_copied_gives_what_a_full_read_gives()
    {
        var v1 = Noise(2, 40, extra: 300);
        var p1 = await _local.BackupAsync("g1", ("vda.0", v1));
        using var copy = OpenCopy();
        CopyPoint(copy, p1.PointId);

        var v2 = v1.AsSpan(0, (17 * Block) + 5).ToArray(); // shorter, mid-chunk; never copied
        await _local.BackupAsync("g1", ("vda.0", v2));
        var v3 = new byte[(50 * Block) + 11];
        v2.CopyTo(v3, 0);
        new Random(3).NextBytes(v3.AsSpan(v2.Length)); // grows again, with other bytes past the cut
        v3[2 * Block] ^= 0xFF;
        var p3 = await _local.BackupAsync("g1", ("vda.0", v3));
        var report = CopyPoint(copy, p3.PointId);

        // Chunks 1..3 lie before the cut at 17 blocks + 5 and did not change; chunk 0 did (block 2); every chunk
        // from the cut's chunk (4) on is read.
        Assert.Equal(3, report.ChunksUnchanged);
        Assert.Equal(v3, Restore(copy, p3.PointId));
        Assert.Equal(FullReadDigest(p3.PointId), copy.ReadHeader(p3.PointId).Files.Single().Digest);
    }

    [Fact]
    public async Task Data_written_where_a_shorter_version_had_cut_off_a_zero_tail_is_read()
    {
        var v1 = Noise(7, 40);
        Array.Clear(v1, 20 * Block, 20 * Block); // a zero tail: nothing to keep when a shorter version cuts it off
        var p1 = await _local.BackupAsync("g1", ("vda.0", v1));
        using var copy = OpenCopy();
        CopyPoint(copy, p1.PointId);
        await _local.BackupAsync("g1", ("vda.0", v1.AsSpan(0, 18 * Block).ToArray()));
        var v3 = v1.ToArray();
        new Random(8).NextBytes(v3.AsSpan(24 * Block, 8 * Block)); // back to the first length, data where the zeros were
        var p3 = await _local.BackupAsync("g1", ("vda.0", v3));

        var report = CopyPoint(copy, p3.PointId);
        Assert.Equal(v3, Restore(copy, p3.PointId));
        Assert.Equal(FullReadDigest(p3.PointId), copy.ReadHeader(p3.PointId).Files.Single().Digest);
        Assert.Equal(4, report.ChunksUnchanged); // chunks 0..3 lie before the shorter version's end
    }

    [Fact]
    public async Task A_chunk_lost_from_the_store_since_the_earlier_copy_is_sent_again()
    {
        var v1 = Noise(9, 32);
        var p1 = await _local.BackupAsync("g1", ("vda.0", v1));
        using (var earlier = OpenCopy())
        {
            CopyPoint(earlier, p1.PointId);
        }
        StoredChunks.Drop(Path.Combine(_local.Root, "copy"), StoredChunks.All(Path.Combine(_local.Root, "copy"))[0].Entry.Id);
        var v2 = new byte[v1.Length + Chunk]; // grows by one chunk: every chunk of v1 is still needed
        v1.CopyTo(v2, 0);
        new Random(10).NextBytes(v2.AsSpan(v1.Length));
        var p2 = await _local.BackupAsync("g1", ("vda.0", v2));

        using var copy = OpenCopy(); // the next copy: a store reads where its chunks are when it opens
        var report = CopyPoint(copy, p2.PointId);
        Assert.Equal(2, report.ChunksSent); // the new chunk and the lost one
        Assert.Equal(7, report.ChunksUnchanged);
        Assert.True(copy.Verify(readData: true, CancellationToken.None).Ok);
        Assert.Equal(v1, Restore(copy, p1.PointId));
        Assert.Equal(v2, Restore(copy, p2.PointId));
    }

    [Fact]
    public async Task An_unchanged_file_is_not_read_at_all()
    {
        var content = Noise(4, 32, extra: 99);
        var p1 = await _local.BackupAsync("g1", ("vda.0", content));
        using var copy = OpenCopy();
        CopyPoint(copy, p1.PointId);
        var p2 = await _local.BackupAsync("g1", ("vda.0", content));

        var report = CopyPoint(copy, p2.PointId);
        Assert.Equal(0, report.BytesRead);
        Assert.Equal(report.Chunks, report.ChunksUnchanged);
        Assert.Equal(0, report.ChunksSent);
        Assert.Equal(content, Restore(copy, p2.PointId));
    }

    [Fact]
    public async Task A_point_that_is_not_the_newest_is_read_whole()
    {
        var v1 = Noise(5, 24);
        var p1 = await _local.BackupAsync("g1", ("vda.0", v1));
        var v2 = v1.ToArray();
        v2[3] ^= 1;
        var p2 = await _local.BackupAsync("g1", ("vda.0", v2));
        var v3 = v2.ToArray();
        v3[9 * Block] ^= 1;
        await _local.BackupAsync("g1", ("vda.0", v3));
        using var copy = OpenCopy();
        CopyPoint(copy, p1.PointId);

        var report = CopyPoint(copy, p2.PointId); // p2 is no longer the mirror: no changed-only read
        Assert.Equal(0, report.ChunksUnchanged);
        Assert.Equal(v2.Length, report.BytesRead);
        Assert.Equal(v2, Restore(copy, p2.PointId));
    }

    [Fact]
    public async Task A_damaged_mirror_block_in_a_changed_chunk_is_refused_and_nothing_is_listed()
    {
        var v1 = Noise(6, 16);
        var p1 = await _local.BackupAsync("g1", ("vda.0", v1));
        using var copy = OpenCopy();
        CopyPoint(copy, p1.PointId);
        var v2 = v1.ToArray();
        v2[6 * Block] ^= 0x10;
        var p2 = await _local.BackupAsync("g1", ("vda.0", v2));
        var mirror = Directory.EnumerateFiles(_local.RepoDir, "mirror", SearchOption.AllDirectories).Single();
        using (var f = File.OpenHandle(mirror, FileMode.Open, FileAccess.ReadWrite))
        {
            var b = new byte[1];
            RandomAccess.Read(f, b, (6 * Block) + 100);
            b[0] ^= 0xFF;
            RandomAccess.Write(f, b, (6 * Block) + 100);
        }

        var e = Assert.Throws<RepositoryCorruptException>(() => CopyPoint(copy, p2.PointId));
        Assert.Contains("block 6 of the mirror does not match its signature", e.Message);
        Assert.False(copy.Has(p2.PointId));
    }
}
