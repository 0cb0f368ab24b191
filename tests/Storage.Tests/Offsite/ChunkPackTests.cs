using Backupd.Storage.Offsite;
using Backupd.Storage.Repository;
using Backupd.Storage.Tests.Repository;

namespace Backupd.Storage.Tests.Offsite;

/// <summary>
/// Chunks stored in packs (one file per stored batch): the pack's table, a damaged or cut pack, dedup across packs,
/// compaction by prune, and repositories written before packs (one file per chunk), which are still read and pruned.
/// </summary>
public sealed class ChunkPackTests : IDisposable
{
    private const int Block = TempRepository.BlockSize;
    private const int Chunk = 4 * Block;
    private readonly TempRepository _local = new();
    private readonly OffsiteKey _key = OffsiteKey.Generate();

    public void Dispose() => Directory.Delete(_local.Root, recursive: true);

    private string Target => Path.Combine(_local.Root, "copy");

    private CopyRepository OpenCopy() =>
        CopyRepository.Open(LocalChunkStore.Open(Target, false), _key, create: true, chunkSize: Chunk);

    private static byte[] Noise(int seed, int blocks)
    {
        var content = new byte[blocks * Block];
        new Random(seed).NextBytes(content);
        return content;
    }

    private byte[] Restore(CopyRepository copy, string pointId)
    {
        var target = Path.Combine(_local.Root, $"restored-{Guid.NewGuid():N}");
        copy.RestoreFile(pointId, "vda.0", target, null, CancellationToken.None);
        var bytes = File.ReadAllBytes(target);
        File.Delete(target);
        return bytes;
    }

    private string[] PackFiles() => Directory.EnumerateFiles(Path.Combine(Target, "packs"), "*.pack").Where(f => !Path.GetFileName(f).StartsWith('.')).Order(StringComparer.Ordinal).ToArray();

    [Fact]
    public void A_pack_reads_back_its_table_and_a_damaged_table_or_a_cut_pack_is_refused()
    {
        var frames = Enumerable.Range(1, 3).Select(i => (new ChunkId((UInt128)i, (UInt128)(i * 7)), (ReadOnlyMemory<byte>)new byte[100 * i])).ToList();
        var (parts, entries) = ChunkPack.Build(frames);
        var path = Path.Combine(_local.Root, "one.pack");
        var bytes = parts.SelectMany(p => p.ToArray()).ToArray();
        File.WriteAllBytes(path, bytes);

        var table = StoredChunks.Table(path);
        Assert.Equal(entries, table);
        Assert.Equal([0L, 100, 300], table.Select(e => e.Offset));
        Assert.Equal(600 + (3 * ChunkPack.EntryLength) + ChunkPack.FooterLength, bytes.Length);

        var damaged = (byte[])bytes.Clone();
        damaged[600 + 5] ^= 0x01; // inside the first entry's id
        File.WriteAllBytes(path, damaged);
        Assert.Contains("does not match its hash", Assert.Throws<RepositoryCorruptException>(() => StoredChunks.Table(path)).Message, StringComparison.Ordinal);

        File.WriteAllBytes(path, bytes[..^1]);
        Assert.Contains("not a pack's footer", Assert.Throws<RepositoryCorruptException>(() => StoredChunks.Table(path)).Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_copy_stores_its_chunks_in_few_packs_and_chunks_already_stored_add_no_pack()
    {
        var image = Noise(1, 256); // 64 chunks
        var p1 = await _local.BackupAsync("g1", ("vda.0", image));
        var p2 = await _local.BackupAsync("g2", ("vda.0", image)); // another VM, the same bytes
        using var copy = OpenCopy();

        var first = copy.Copy(_local.Repo, p1.PointId, null, CancellationToken.None);
        var packs = PackFiles();
        Assert.Equal(64, first.ChunksSent);
        Assert.Equal(64, StoredChunks.Count(Target));
        Assert.InRange(packs.Length, 1, 8);
        Assert.False(Directory.Exists(Path.Combine(Target, "chunks")), "a new repository has no per-chunk directories");

        var second = copy.Copy(_local.Repo, p2.PointId, null, CancellationToken.None);
        Assert.Equal(0, second.ChunksSent);
        Assert.Equal(packs, PackFiles());
        Assert.Equal(image, Restore(copy, p2.PointId));
    }

    [Fact]
    public async Task A_pack_whose_table_is_damaged_counts_as_missing_and_the_next_copy_stores_its_chunks_again()
    {
        var v1 = Noise(2, 32);
        var p1 = await _local.BackupAsync("g1", ("vda.0", v1));
        using (var copy = OpenCopy())
        {
            copy.Copy(_local.Repo, p1.PointId, null, CancellationToken.None);
        }
        var pack = Assert.Single(PackFiles());
        var bytes = File.ReadAllBytes(pack);
        bytes[^(ChunkPack.FooterLength + 10)] ^= 0x20; // in the table's last entry
        File.WriteAllBytes(pack, bytes);

        using (var copy = OpenCopy())
        {
            var report = copy.Verify(readData: false, CancellationToken.None);
            Assert.False(report.Ok);
            Assert.Equal(8, report.Problems.Count(p => p.Contains("missing from the store", StringComparison.Ordinal)));
            var e = Assert.Throws<RepositoryCorruptException>(() => Restore(copy, p1.PointId));
            Assert.Contains("unreadable table: " + Path.GetFileName(pack), e.Message, StringComparison.Ordinal);
        }

        var v2 = v1.Concat(Noise(3, 4)).ToArray(); // the next point: every chunk of v1 and one more
        var p2 = await _local.BackupAsync("g1", ("vda.0", v2));
        using (var copy = OpenCopy())
        {
            Assert.Equal(9, copy.Copy(_local.Repo, p2.PointId, null, CancellationToken.None).ChunksSent);
            Assert.True(copy.Verify(readData: true, CancellationToken.None).Ok);
            Assert.Equal(v1, Restore(copy, p1.PointId));
        }
    }

    [Fact]
    public async Task Prune_rewrites_a_pack_of_live_and_dead_chunks_without_the_dead_and_removes_a_pack_left_empty()
    {
        var shared = Noise(4, 16);
        var v1 = shared.Concat(Noise(5, 16)).ToArray(); // chunks 0-3 shared with v2, 4-7 only in v1
        var v2 = shared.Concat(Noise(6, 16)).ToArray();
        var v3 = Noise(7, 16);
        var p1 = await _local.BackupAsync("g1", ("vda.0", v1));
        var p2 = await _local.BackupAsync("g2", ("vda.0", v2));
        var p3 = await _local.BackupAsync("g3", ("vda.0", v3));
        using var copy = OpenCopy();
        foreach (var p in new[] { p1, p2, p3 })
        {
            copy.Copy(_local.Repo, p.PointId, null, CancellationToken.None);
        }
        var before = PackFiles();
        Assert.Equal(3, before.Length);
        Assert.Equal(16, StoredChunks.Count(Target));
        var bytesBefore = StoredChunks.Bytes(Target);

        var report = copy.Prune([p1.PointId, p3.PointId], dryRun: false, CancellationToken.None);
        Assert.Equal(8, report.ChunksRemoved); // v1's own 4 and v3's 4; the shared 4 stay
        var after = PackFiles();
        Assert.Equal(2, after.Length); // v1's pack rewritten with the shared chunks, v3's removed, v2's untouched
        Assert.Equal(8, StoredChunks.Count(Target));
        Assert.Equal(report.BytesFreed, bytesBefore - StoredChunks.Bytes(Target));
        Assert.Equal(v2, Restore(copy, p2.PointId));
        Assert.True(copy.Verify(readData: true, CancellationToken.None).Ok);
    }

    [Fact]
    public async Task A_repository_of_one_file_per_chunk_is_read_verified_pruned_and_then_written_in_packs()
    {
        var v1 = Noise(8, 16);
        var v2 = Noise(9, 16);
        var p1 = await _local.BackupAsync("g1", ("vda.0", v1));
        var p2 = await _local.BackupAsync("g2", ("vda.0", v2));
        using (var copy = OpenCopy())
        {
            copy.Copy(_local.Repo, p1.PointId, null, CancellationToken.None);
            copy.Copy(_local.Repo, p2.PointId, null, CancellationToken.None);
        }
        // The layout before packs: chunks/XX/ID, each a sealed frame of its own.
        foreach (var pack in PackFiles())
        {
            var bytes = File.ReadAllBytes(pack);
            foreach (var e in StoredChunks.Table(pack))
            {
                var hex = e.Id.ToHex();
                Directory.CreateDirectory(Path.Combine(Target, "chunks", hex[..2]));
                File.WriteAllBytes(Path.Combine(Target, "chunks", hex[..2], hex), bytes.AsSpan((int)e.Offset, e.Length).ToArray());
            }
            File.Delete(pack);
        }
        string LooseFiles() => string.Join(",", Directory.EnumerateFiles(Path.Combine(Target, "chunks"), "*", SearchOption.AllDirectories).Select(Path.GetFileName).Order(StringComparer.Ordinal));
        Assert.Equal(8, LooseFiles().Split(',').Length);

        using (var copy = OpenCopy())
        {
            Assert.Equal(v1, Restore(copy, p1.PointId));
            Assert.True(copy.Verify(readData: true, CancellationToken.None).Ok);
            var report = copy.Prune([p1.PointId], dryRun: false, CancellationToken.None);
            Assert.Equal(4, report.ChunksRemoved);
            Assert.True(report.BytesFreed > 4 * Block / 2, $"{report.BytesFreed} bytes freed");
        }
        Assert.Equal(4, LooseFiles().Split(',').Length);
        var p3 = await _local.BackupAsync("g1", ("vda.0", Noise(10, 8)));
        using (var copy = OpenCopy())
        {
            Assert.Equal(2, copy.Copy(_local.Repo, p3.PointId, null, CancellationToken.None).ChunksSent);
            Assert.Single(PackFiles());
            Assert.Equal(v2, Restore(copy, p2.PointId));
            Assert.True(copy.Verify(readData: true, CancellationToken.None).Ok);
        }
    }

    [Fact]
    public async Task Packs_are_written_with_O_DIRECT_where_the_file_system_has_it_and_buffered_where_it_refuses_it()
    {
        var expected = Enumerable.Repeat((byte)0x5a, RepositoryDirectory.DirectAlignment).ToArray();
        Assert.True(WriteDirect(_local.Root, expected));
        Assert.Equal(expected, File.ReadAllBytes(Path.Combine(_local.Root, "direct.bin")));

        // ramfs has no O_DIRECT: the direct write says so and leaves nothing; the store writes its packs buffered.
        var ramfs = Path.Combine(_local.Root, "ramfs");
        Directory.CreateDirectory(ramfs);
        Run("mount", "-t", "ramfs", "ramfs", ramfs);
        try
        {
            Assert.False(WriteDirect(ramfs, expected));
            Assert.Empty(Directory.EnumerateFileSystemEntries(ramfs));

            var image = Noise(11, 64);
            var point = await _local.BackupAsync("g1", ("vda.0", image));
            using var copy = CopyRepository.Open(LocalChunkStore.Open(Path.Combine(ramfs, "copy"), false), _key, create: true, chunkSize: Chunk);
            Assert.Equal(16, copy.Copy(_local.Repo, point.PointId, null, CancellationToken.None).ChunksSent);
            Assert.Equal(16, StoredChunks.Count(Path.Combine(ramfs, "copy")));
            Assert.True(copy.Verify(readData: true, CancellationToken.None).Ok);
            var target = Path.Combine(_local.Root, "restored-ramfs");
            copy.RestoreFile(point.PointId, "vda.0", target, null, CancellationToken.None);
            Assert.Equal(image, File.ReadAllBytes(target));
        }
        finally
        {
            Run("umount", ramfs);
        }
    }

    /// <summary>One aligned block written with <see cref="RepositoryDirectory.TryWriteFileDirect"/> to ROOT/direct.bin.</summary>
    private static bool WriteDirect(string root, byte[] content)
    {
        using var buffer = new AlignedBuffer();
        var span = buffer.Take(content.Length);
        content.CopyTo(span);
        using var dir = new RepositoryDirectory(root);
        return dir.TryWriteFileDirect(root + "/direct.bin", span, noReplace: true);
    }

    private static void Run(string command, params string[] args)
    {
        using var process = System.Diagnostics.Process.Start(new System.Diagnostics.ProcessStartInfo(command, args) { RedirectStandardError = true })
            ?? throw new InvalidOperationException($"cannot start {command}");
        var error = process.StandardError.ReadToEnd();
        process.WaitForExit();
        Assert.True(process.ExitCode == 0, $"{command} {string.Join(' ', args)}: {error} (these tests run as root: mount needs it)");
    }
}
