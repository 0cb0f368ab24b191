using Backupd.Storage.Offsite;
using Backupd.Storage.Repository;
using Backupd.Storage.Tests.Repository;

namespace Backupd.Storage.Tests.Offsite;

/// <summary>The copy repository format on a local directory and through the serve protocol (in-process pipes).</summary>
public sealed class CopyRepositoryTests : IDisposable
{
    private const int Block = TempRepository.BlockSize;
    private readonly TempRepository _local = new();
    private readonly OffsiteKey _key = OffsiteKey.Generate();
    private string Target => Path.Combine(_local.Root, "copy");

    public void Dispose() => Directory.Delete(_local.Root, recursive: true);

    private CopyRepository OpenCopy(OffsiteKey? key = null, bool appendOnly = false) =>
        CopyRepository.Open(LocalChunkStore.Open(Target, appendOnly), key ?? _key, create: true, chunkSize: Block); // one chunk per block: the counts below are in blocks

    /// <summary>Content with zero blocks (holes) and a short last block.</summary>
    private static byte[] Image(int seed)
    {
        var content = Noise(seed, 12, extra: 1000);
        Array.Clear(content, 3 * Block, 2 * Block);
        return content;
    }

    /// <summary>Random blocks: none zero, no two equal.</summary>
    private static byte[] Noise(int seed, int blocks, int extra = 0)
    {
        var content = new byte[(blocks * Block) + extra];
        new Random(seed).NextBytes(content);
        return content;
    }

    private byte[] RestoreFromCopy(CopyRepository copy, string pointId, string key)
    {
        var target = Path.Combine(_local.Root, $"restored-{Guid.NewGuid():N}");
        copy.RestoreFile(pointId, key, target, null, CancellationToken.None);
        var bytes = File.ReadAllBytes(target);
        File.Delete(target);
        return bytes;
    }

    private int StoredChunkCount() => StoredChunks.Count(Target);

    [Fact]
    public async Task Copy_then_restore_gives_every_file_byte_identical_with_the_points_metadata()
    {
        var disk0 = Image(1);
        var disk1 = Image(2);
        var point = await _local.BackupAsync("g1", ("vda.0", disk0), ("vdb.0", disk1));
        using var copy = OpenCopy();
        var report = copy.Copy(_local.Repo, point.PointId, null, CancellationToken.None);

        Assert.False(report.AlreadyThere);
        Assert.Equal(2 * 13, report.Chunks);
        Assert.Equal(2 * 2, report.ZeroChunks);
        Assert.Equal(disk0, RestoreFromCopy(copy, point.PointId, "vda.0"));
        Assert.Equal(disk1, RestoreFromCopy(copy, point.PointId, "vdb.0"));
        var listed = Assert.Single(copy.List());
        Assert.Equal(point.PointId, listed.PointId);
        Assert.Equal("g1", listed.GroupId);
        Assert.Equal("<domain><name>g1</name></domain>", listed.Metadata["domain.xml"]);
        Assert.Equal(point.Files.Single(f => f.FileKey == "vda.0").Digest, listed.Files.Single(f => f.FileKey == "vda.0").LocalDigest);
        Assert.True(copy.Copy(_local.Repo, point.PointId, null, CancellationToken.None).AlreadyThere);
    }

    [Fact]
    public async Task Nothing_of_the_content_is_readable_in_the_target_without_the_key()
    {
        var disk = new byte[8 * Block];
        var marker = "backupd-plaintext-marker-0123456789"u8.ToArray();
        for (var o = 0; o + marker.Length <= disk.Length; o += marker.Length + 7)
        {
            marker.CopyTo(disk, o);
        }
        var point = await _local.BackupAsync("g1", ("vda.0", disk));
        using var copy = OpenCopy();
        copy.Copy(_local.Repo, point.PointId, null, CancellationToken.None);

        foreach (var file in Directory.EnumerateFiles(Target, "*", SearchOption.AllDirectories))
        {
            var bytes = File.ReadAllBytes(file);
            Assert.True(bytes.AsSpan().IndexOf(marker.AsSpan(0, 12)) < 0, $"{file} holds plaintext");
            Assert.True(bytes.AsSpan().IndexOf("<domain>"u8) < 0, $"{file} holds the domain XML");
        }
    }

    [Fact]
    public async Task Equal_blocks_of_two_vms_and_of_two_points_are_stored_once()
    {
        var template = Noise(7, 16);
        var a = await _local.BackupAsync("clone-a", ("vda.0", template));
        var b = await _local.BackupAsync("clone-b", ("vda.0", template));
        using var copy = OpenCopy();
        var first = copy.Copy(_local.Repo, a.PointId, null, CancellationToken.None);
        var second = copy.Copy(_local.Repo, b.PointId, null, CancellationToken.None);
        Assert.Equal(16, first.ChunksSent);
        Assert.Equal(0, second.ChunksSent);
        Assert.Equal(16, StoredChunkCount());

        var changed = template.ToArray();
        changed[5 * Block + 3] ^= 0xFF;
        var a2 = await _local.BackupAsync("clone-a", ("vda.0", changed));
        var third = copy.Copy(_local.Repo, a2.PointId, null, CancellationToken.None);
        Assert.Equal(1, third.ChunksSent);
        Assert.Equal(17, StoredChunkCount());
        Assert.Equal(template, RestoreFromCopy(copy, a.PointId, "vda.0"));
        Assert.Equal(changed, RestoreFromCopy(copy, a2.PointId, "vda.0"));
    }

    [Fact]
    public async Task A_flipped_byte_in_a_chunk_is_found_by_verify_and_never_restored()
    {
        var point = await _local.BackupAsync("g1", ("vda.0", Image(3)));
        using var copy = OpenCopy();
        copy.Copy(_local.Repo, point.PointId, null, CancellationToken.None);
        Assert.True(copy.Verify(readData: true, CancellationToken.None).Ok);

        var chunk = StoredChunks.FlipByte(Target).ToHex();

        var report = copy.Verify(readData: true, CancellationToken.None);
        Assert.False(report.Ok);
        Assert.Contains(report.Problems, p => p.Contains(chunk, StringComparison.Ordinal) && p.Contains("fails authentication", StringComparison.Ordinal));
        var target = Path.Combine(_local.Root, "restored");
        Assert.Throws<RepositoryCorruptException>(() => copy.RestoreFile(point.PointId, "vda.0", target, null, CancellationToken.None));
        Assert.False(File.Exists(target));
    }

    [Fact]
    public async Task A_flipped_byte_in_an_index_is_found_by_verify_without_reading_data()
    {
        var point = await _local.BackupAsync("g1", ("vda.0", Image(4)));
        using var copy = OpenCopy();
        copy.Copy(_local.Repo, point.PointId, null, CancellationToken.None);
        var index = Path.Combine(Target, "indexes", point.PointId + ".idx");
        var bytes = File.ReadAllBytes(index);
        bytes[bytes.Length / 2] ^= 0x40;
        File.WriteAllBytes(index, bytes);

        var report = copy.Verify(readData: false, CancellationToken.None);
        Assert.False(report.Ok);
        Assert.Contains(report.Problems, p => p.Contains($"index of {point.PointId}", StringComparison.Ordinal));
        var target = Path.Combine(_local.Root, "restored");
        Assert.Throws<RepositoryCorruptException>(() => copy.RestoreFile(point.PointId, "vda.0", target, null, CancellationToken.None));
        Assert.False(File.Exists(target));
    }

    [Fact]
    public async Task A_chunk_stored_under_another_id_is_refused()
    {
        var point = await _local.BackupAsync("g1", ("vda.0", Noise(9, 4)));
        using var copy = OpenCopy();
        copy.Copy(_local.Repo, point.PointId, null, CancellationToken.None);
        var chunks = StoredChunks.All(Target);
        StoredChunks.Swap(Target, chunks[1].Entry.Id, chunks[0].Entry.Id); // a valid frame, but of another chunk

        var report = copy.Verify(readData: true, CancellationToken.None);
        Assert.Contains(report.Problems, p => p.Contains(chunks[1].Entry.Id.ToHex(), StringComparison.Ordinal));
    }

    [Fact]
    public async Task The_wrong_key_is_a_clear_error_naming_both_fingerprints()
    {
        var point = await _local.BackupAsync("g1", ("vda.0", Image(5)));
        using (var copy = OpenCopy())
        {
            copy.Copy(_local.Repo, point.PointId, null, CancellationToken.None);
        }
        var other = OffsiteKey.Generate();
        var e = Assert.Throws<WrongKeyException>(() => OpenCopy(other));
        Assert.Contains(other.Fingerprint, e.Message, StringComparison.Ordinal);
        Assert.Contains(_key.Fingerprint, e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task An_interrupted_copy_lists_no_point_and_the_next_copy_sends_only_what_is_missing()
    {
        var content = Noise(11, 2048 + 16); // 2 read buffers of 8 MiB and a bit
        var point = await _local.BackupAsync("g1", ("vda.0", content));
        var failing = new FailingStore(LocalChunkStore.Open(Target), failAfterPuts: 1);
        using (var copy = CopyRepository.Open(failing, _key, create: true, chunkSize: Block))
        {
            Assert.Throws<IOException>(() => copy.Copy(_local.Repo, point.PointId, null, CancellationToken.None));
            Assert.Empty(copy.List());
        }
        Assert.Empty(Directory.EnumerateFiles(Path.Combine(Target, "indexes")));
        using var again = OpenCopy();
        var report = again.Copy(_local.Repo, point.PointId, null, CancellationToken.None);
        Assert.Equal(2064 - 2048, report.ChunksSent);
        Assert.Equal(content, RestoreFromCopy(again, point.PointId, "vda.0"));
    }

    [Fact]
    public async Task Over_the_serve_protocol_copy_list_restore_work_and_append_only_refuses_delete()
    {
        var disk = Image(6);
        var point = await _local.BackupAsync("g1", ("vda.0", disk));
        using (var copy = CopyRepository.Open(Serve(appendOnly: true, out var server), _key, create: true, chunkSize: Block))
        {
            copy.Copy(_local.Repo, point.PointId, null, CancellationToken.None);
            Assert.Equal(point.PointId, Assert.Single(copy.List()).PointId);
            Assert.Equal(disk, RestoreFromCopy(copy, point.PointId, "vda.0"));
            Assert.True(copy.Verify(readData: true, CancellationToken.None).Ok);
            var refused = Assert.Throws<ChunkStoreRefusedException>(() => copy.Delete(point.PointId));
            Assert.Contains("append-only", refused.Message, StringComparison.Ordinal);
            Assert.True(copy.Has(point.PointId));
        }
        using (var writable = CopyRepository.Open(Serve(appendOnly: false, out _), _key, create: false))
        {
            writable.Delete(point.PointId);
            Assert.Empty(writable.List());
        }
    }

    [Fact]
    public void The_server_refuses_a_chunk_without_valid_framing()
    {
        using var store = Serve(appendOnly: true, out _);
        store.CreateConfig("{}"u8.ToArray());
        var e = Assert.Throws<RepositoryCorruptException>(() => store.PutChunks([(new ChunkId(1, 2), new byte[100])]));
        Assert.Contains("chunk header", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void The_paper_key_reads_back_and_a_typing_error_is_named_by_line()
    {
        var paper = _key.ToPaper();
        Assert.Equal(_key.Fingerprint, OffsiteKey.FromPaper(paper).Fingerprint);
        var lines = paper.Split('\n');
        var line3 = Array.FindIndex(lines, l => l.StartsWith("3:", StringComparison.Ordinal));
        var digit = lines[line3][3] == '0' ? '1' : '0';
        lines[line3] = lines[line3][..3] + digit + lines[line3][4..];
        var e = Assert.Throws<FormatException>(() => OffsiteKey.FromPaper(string.Join('\n', lines)));
        Assert.Contains("line 3", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    [System.Runtime.Versioning.SupportedOSPlatform("linux")]
    public void A_key_file_is_created_0600_and_never_replaced()
    {
        var path = Path.Combine(_local.Root, "offsite.key");
        _key.Save(path);
        Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, File.GetUnixFileMode(path));
        Assert.Equal(_key.Fingerprint, OffsiteKey.Load(path).Fingerprint);
        Assert.Throws<RepositoryException>(() => OffsiteKey.Generate().Save(path));
        File.SetUnixFileMode(path, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.GroupRead);
        Assert.Contains("chmod 600", Assert.Throws<RepositoryException>(() => OffsiteKey.Load(path)).Message, StringComparison.Ordinal);
    }

    private RemoteChunkStore Serve(bool appendOnly, out Thread server) => PipeServe.Start(Target, appendOnly, out server);

    /// <summary>A store whose PutChunks fails (as a lost connection would) after some batches.</summary>
    private sealed class FailingStore(LocalChunkStore inner, int failAfterPuts) : IChunkStore
    {
        private int _puts;
        public string Location => inner.Location;
        public bool AppendOnly => inner.AppendOnly;
        public byte[]? ReadConfig() => inner.ReadConfig();
        public void CreateConfig(byte[] config) => inner.CreateConfig(config);
        public IReadOnlyList<ChunkId> Missing(IReadOnlyList<ChunkId> ids) => inner.Missing(ids);

        public void PutChunks(IReadOnlyList<(ChunkId Id, ReadOnlyMemory<byte> Frame)> chunks)
        {
            if (++_puts > failAfterPuts)
            {
                throw new IOException("connection lost (test)");
            }
            inner.PutChunks(chunks);
        }

        public IReadOnlyList<byte[]> GetChunks(IReadOnlyList<ChunkId> ids) => inner.GetChunks(ids);
        public IIndexUpload BeginIndex(string name) => inner.BeginIndex(name);
        public IReadOnlyList<(string Name, long Length)> ListIndexes() => inner.ListIndexes();
        public Stream OpenIndex(string name) => inner.OpenIndex(name);
        public void DeleteIndex(string name) => inner.DeleteIndex(name);
        public void Dispose() => inner.Dispose();
    }
}
