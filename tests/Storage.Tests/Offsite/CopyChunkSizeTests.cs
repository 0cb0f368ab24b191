using System.Text.Json.Nodes;
using Backupd.Storage.Offsite;
using Backupd.Storage.Repository;
using Backupd.Storage.Tests.Repository;

namespace Backupd.Storage.Tests.Offsite;

/// <summary>Chunks coarser than the local blocks: cut, stored, restored and kept for a repository's life.</summary>
public sealed class CopyChunkSizeTests : IDisposable
{
    private const int Block = TempRepository.BlockSize;
    private const int Chunk = 4 * Block;
    private readonly TempRepository _local = new();
    private readonly OffsiteKey _key = OffsiteKey.Generate();
    private string Target => Path.Combine(_local.Root, "copy");
    private string ConfigPath => Path.Combine(Target, LocalChunkStore.ConfigName);

    public void Dispose() => Directory.Delete(_local.Root, recursive: true);

    private CopyRepository Open(int chunkSize = Chunk) => CopyRepository.Open(LocalChunkStore.Open(Target), _key, create: true, chunkSize);

    private byte[] Restore(CopyRepository copy, string pointId, string key)
    {
        var target = Path.Combine(_local.Root, $"restored-{Guid.NewGuid():N}");
        copy.RestoreFile(pointId, key, target, null, CancellationToken.None);
        var bytes = File.ReadAllBytes(target);
        File.Delete(target);
        return bytes;
    }

    /// <summary>
    /// 20 MiB: the first 8 MiB window all data, so the reader's second use of that buffer (16–20 MiB) holds stale
    /// bytes where the mirror has holes; there every other block is zero (a hole inside a chunk with data), then
    /// whole zero chunks, then a short last chunk.
    /// </summary>
    private static byte[] MixedImage()
    {
        var content = new byte[(20 << 20) + 1000];
        new Random(7).NextBytes(content);
        for (var o = 16 << 20; o < 18 << 20; o += 2 * Block)
        {
            Array.Clear(content, o, Block);
        }
        Array.Clear(content, 18 << 20, 1 << 20);
        return content;
    }

    [Fact]
    public async Task Holes_inside_a_chunk_are_restored_as_zeros_and_only_all_zero_chunks_are_zero()
    {
        var image = MixedImage();
        var point = await _local.BackupAsync("g1", ("vda.0", image));
        using var copy = Open();
        var report = copy.Copy(_local.Repo, point.PointId, null, CancellationToken.None);

        Assert.Equal((image.Length + Chunk - 1) / Chunk, report.Chunks);
        Assert.Equal((1 << 20) / Chunk, report.ZeroChunks); // the half-zero chunks are data
        Assert.Equal(report.Chunks - report.ZeroChunks, report.ChunksSent);
        Assert.Equal(report.ChunksSent, StoredChunks.Count(Target));
        Assert.Equal(Chunk, copy.ReadHeader(point.PointId).Files.Single().BlockSize);
        Assert.Equal(image, Restore(copy, point.PointId, "vda.0"));
        Assert.True(copy.Verify(readData: true, CancellationToken.None).Ok);
    }

    [Fact]
    public async Task A_repository_keeps_its_chunk_size_so_an_unchanged_point_sends_nothing()
    {
        var image = MixedImage();
        var first = await _local.BackupAsync("g1", ("vda.0", image));
        using (var copy = Open(Chunk))
        {
            copy.Copy(_local.Repo, first.PointId, null, CancellationToken.None);
        }
        Assert.Equal(Chunk, JsonNode.Parse(File.ReadAllText(ConfigPath))!["chunkSize"]!.GetValue<int>());

        var second = await _local.BackupAsync("g1", ("vda.0", image));
        using (var copy = Open(16 * Chunk)) // asked for another size: the repository's own is used
        {
            var report = copy.Copy(_local.Repo, second.PointId, null, CancellationToken.None);
            Assert.Equal(0, report.ChunksSent);
            Assert.Equal(Chunk, copy.ReadHeader(second.PointId).Files.Single().BlockSize);
            Assert.Equal(image, Restore(copy, second.PointId, "vda.0"));
        }
    }

    [Fact]
    public async Task A_repository_made_before_chunk_sizes_cuts_at_the_local_blocks()
    {
        var image = MixedImage();
        var point = await _local.BackupAsync("g1", ("vda.0", image));
        using (Open())
        {
        }
        var config = JsonNode.Parse(File.ReadAllText(ConfigPath))!.AsObject();
        config.Remove("chunkSize");
        File.WriteAllText(ConfigPath, config.ToJsonString());

        using var copy = Open();
        var report = copy.Copy(_local.Repo, point.PointId, null, CancellationToken.None);
        Assert.Equal((image.Length + Block - 1) / Block, report.Chunks);
        Assert.Equal(Block, copy.ReadHeader(point.PointId).Files.Single().BlockSize);
        Assert.Equal(image, Restore(copy, point.PointId, "vda.0"));
    }

    [Fact]
    public void A_chunk_size_that_is_not_a_power_of_two_is_refused_by_name()
    {
        using (Open())
        {
        }
        var config = JsonNode.Parse(File.ReadAllText(ConfigPath))!.AsObject();
        config["chunkSize"] = 5000;
        File.WriteAllText(ConfigPath, config.ToJsonString());

        var e = Assert.Throws<RepositoryException>(() => Open());
        Assert.Contains("chunkSize 5000", e.Message, StringComparison.Ordinal);
        Assert.Contains(LocalChunkStore.ConfigName, e.Message, StringComparison.Ordinal);
    }
}
