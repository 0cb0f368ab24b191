using Backupd.Storage.Offsite;
using Backupd.Storage.Repository;
using Backupd.Storage.Tests.Repository;

namespace Backupd.Storage.Tests.Offsite;

/// <summary>Pruning a copy repository: indexes removed, then the chunks no index names; locks, append-only, damage.</summary>
public sealed class CopyPruneTests : IDisposable
{
    private const int Block = TempRepository.BlockSize;
    private readonly TempRepository _local = new();
    private readonly OffsiteKey _key = OffsiteKey.Generate();
    private string Target => Path.Combine(_local.Root, "copy");

    public void Dispose() => Directory.Delete(_local.Root, recursive: true);

    private CopyRepository OpenCopy(bool appendOnly = false, TimeSpan? wait = null) =>
        CopyRepository.Open(LocalChunkStore.Open(Target, appendOnly, wait), _key, create: true, chunkSize: Block);

    private static byte[] Noise(int seed, int blocks)
    {
        var content = new byte[blocks * Block];
        new Random(seed).NextBytes(content);
        return content;
    }

    private string[] ChunkFiles() => StoredChunks.All(Target).Select(c => c.Entry.Id.ToHex()).ToArray();

    /// <summary>Point a (12 blocks), b (its first 6 blocks and 6 new ones) of g1, c (12 other blocks) of g2, all copied.</summary>
    private async Task<(string A, string B, string C, byte[] DiskB, byte[] DiskC)> ThreePointsAsync()
    {
        var diskA = Noise(1, 12);
        var diskB = diskA[..(6 * Block)].Concat(Noise(2, 6)).ToArray();
        var diskC = Noise(3, 12);
        var a = await _local.BackupAsync("g1", ("vda.0", diskA));
        var b = await _local.BackupAsync("g1", ("vda.0", diskB));
        var c = await _local.BackupAsync("g2", ("vda.0", diskC));
        using var copy = OpenCopy();
        foreach (var p in new[] { a, b, c })
            copy.Copy(_local.Repo, p.PointId, null, CancellationToken.None);
        return (a.PointId, b.PointId, c.PointId, diskB, diskC);
    }

    private byte[] Restore(CopyRepository copy, string point)
    {
        var path = Path.Combine(_local.Root, $"r-{Guid.NewGuid():N}");
        copy.RestoreFile(point, "vda.0", path, null, CancellationToken.None);
        var bytes = File.ReadAllBytes(path);
        File.Delete(path);
        return bytes;
    }

    [Fact]
    public async Task Pruning_a_point_removes_its_index_and_only_the_chunks_no_other_point_names()
    {
        var (a, b, c, diskB, diskC) = await ThreePointsAsync();
        Assert.Equal(30, ChunkFiles().Length);
        var leftover = Path.Combine(Target, "packs", $".{new string('0', 32)}.pack.dead.tmp");
        await File.WriteAllBytesAsync(leftover, new byte[10]);

        using (var dry = OpenCopy())
        {
            var would = dry.Prune([a], dryRun: true, CancellationToken.None);
            Assert.Equal([a], would.IndexesRemoved);
            Assert.Equal(6, would.ChunksRemoved);
            Assert.Equal(24, would.ChunksKept);
        }
        Assert.Equal(30, ChunkFiles().Length);
        using (var listing = OpenCopy())
        {
            Assert.Equal(3, listing.List().Count);
        }
        Assert.True(File.Exists(leftover));

        using var copy = OpenCopy();
        var report = copy.Prune([a], dryRun: false, CancellationToken.None);
        Assert.Equal([a], report.IndexesRemoved);
        Assert.Equal(6, report.ChunksRemoved);
        Assert.True(report.BytesFreed > 6 * 16, $"{report.BytesFreed} bytes freed");
        Assert.Equal(1, report.LeftoversRemoved);
        Assert.False(File.Exists(leftover));
        Assert.Equal(24, ChunkFiles().Length);
        Assert.Equal(new[] { b, c }.Order(StringComparer.Ordinal), copy.List().Select(h => h.PointId).Order(StringComparer.Ordinal));
        Assert.Equal(diskB, Restore(copy, b));
        Assert.Equal(diskC, Restore(copy, c));
        Assert.True(copy.Verify(readData: true, CancellationToken.None).Ok);

        // Nothing to remove: a second prune collects nothing.
        Assert.Equal(0, copy.Prune([], dryRun: false, CancellationToken.None).ChunksRemoved);
    }

    [Fact]
    public async Task A_prune_waits_for_no_copy_it_is_refused_while_another_user_holds_the_repository()
    {
        var (a, _, _, _, _) = await ThreePointsAsync();
        using var reader = OpenCopy(); // a restore or copy in progress elsewhere
        using var pruning = OpenCopy(wait: TimeSpan.FromMilliseconds(300));
        var e = Assert.Throws<RepositoryBusyException>(() => pruning.Prune([a], dryRun: false, CancellationToken.None));
        Assert.Contains("in use by a copy, restore or verify", e.Message, StringComparison.Ordinal);
        Assert.Equal(3, reader.List().Count);
        Assert.Equal(30, ChunkFiles().Length);
    }

    [Fact]
    public async Task A_copy_is_refused_while_a_prune_holds_the_repository()
    {
        var (a, _, _, _, _) = await ThreePointsAsync();
        using var pruning = OpenCopy();
        pruning.Prune([a], dryRun: false, CancellationToken.None); // holds it until disposed
        var e = Assert.Throws<RepositoryBusyException>(() => OpenCopy());
        Assert.Contains("a prune is collecting", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Append_only_refuses_the_prune_through_the_serve_protocol_and_removes_nothing()
    {
        var (a, b, _, diskB, _) = await ThreePointsAsync();
        using (var appendOnly = CopyRepository.Open(Serve(appendOnly: true), _key, create: false))
        {
            Assert.Equal(6, appendOnly.Prune([a], dryRun: true, CancellationToken.None).ChunksRemoved);
            var e = Assert.Throws<ChunkStoreRefusedException>(() => appendOnly.Prune([a], dryRun: false, CancellationToken.None));
            Assert.Contains("append-only", e.Message, StringComparison.Ordinal);
        }
        Assert.Equal(30, ChunkFiles().Length);
        using (var writable = CopyRepository.Open(Serve(appendOnly: false), _key, create: false))
        {
            var report = writable.Prune([a], dryRun: false, CancellationToken.None);
            Assert.Equal(6, report.ChunksRemoved);
            Assert.Equal(diskB, Restore(writable, b));
        }
        Assert.Equal(24, ChunkFiles().Length);
    }

    [Fact]
    public async Task A_damaged_index_stops_the_collection_before_any_chunk_is_deleted()
    {
        var (a, b, _, _, _) = await ThreePointsAsync();
        var index = Path.Combine(Target, "indexes", b + ".idx");
        var bytes = await File.ReadAllBytesAsync(index);
        bytes[bytes.Length / 2] ^= 0x10;
        await File.WriteAllBytesAsync(index, bytes);
        using var copy = OpenCopy();
        var e = Assert.Throws<RepositoryCorruptException>(() => copy.Prune([a], dryRun: false, CancellationToken.None));
        Assert.Contains($"index of {b} is damaged", e.Message, StringComparison.Ordinal);
        Assert.Contains("no chunk was collected", e.Message, StringComparison.Ordinal);
        Assert.Equal(30, ChunkFiles().Length);
    }

    private RemoteChunkStore Serve(bool appendOnly) => PipeServe.Start(Target, appendOnly, out _);
}
