using System.Text.Json.Nodes;
using Backupd.Storage.Repository;

namespace Backupd.Storage.Tests.Repository;

/// <summary>
/// Issue 16: documents carry a MAC, so an edit made outside backupd (someone without the key, or an accident) is
/// reported by verify and refused by restore, forget and backup; format-1 repositories are upgraded at open.
/// </summary>
public class DocumentAuthenticationTests
{
    private static readonly byte[] V0 = TempRepository.Content(11, 10, 7);
    private static readonly byte[] V1 = TempRepository.Edit(12, V0, Delta.TestFiles.Edit.InPlace);

    [Theory]
    [InlineData("sourcePath", "/outside/evil.qcow2")]
    [InlineData("format", "qcow2")]
    [InlineData("backingFile", "/outside/base.qcow2")]
    public async Task An_edited_point_document_is_reported_by_verify_and_refused_by_restore_forget_and_backup(string field, string value)
    {
        using var h = new HostileRepository();
        var p0 = await h.T.BackupAsync("g", ("vda.0", V0));
        var p1 = await h.T.BackupAsync("g", ("vda.0", V1));
        var path = h.PointFile("g", p0.PointId);
        var original = File.ReadAllBytes(path);
        HostileRepository.EditJson(path, o => o["files"]![0]![field] = value);

        var report = await h.T.Repo.VerifyAsync(null, null, null, CancellationToken.None);
        Assert.False(report.Ok);
        Assert.Contains(report.Problems, p => p.Contains(path, StringComparison.Ordinal) && p.Contains("MAC does not match", StringComparison.Ordinal));
        var e = await Assert.ThrowsAsync<RepositoryCorruptException>(() => h.T.RestoreAsync(p0.PointId, "vda.0"));
        Assert.Contains(path, e.Message, StringComparison.Ordinal);
        Assert.Throws<RepositoryCorruptException>(() => h.T.Repo.DeletePoint(p1.PointId));
        await Assert.ThrowsAsync<RepositoryCorruptException>(() => h.T.BackupAsync("g", ("vda.0", V0)));
        await Assert.ThrowsAsync<RepositoryCorruptException>(() => h.T.RestoreAsync(p1.PointId, "vda.0")); // its chain includes the edited point
        // Refused, not changed: with the document put back, everything is as before.
        File.WriteAllBytes(path, original);
        Assert.Equal(V0, await h.T.RestoreAsync(p0.PointId, "vda.0"));
        Assert.Equal(V1, await h.T.RestoreAsync(p1.PointId, "vda.0"));
        Assert.Equal(2, h.T.Repo.ListPoints("g").Count);
    }

    [Fact]
    public async Task An_edited_group_document_is_reported_by_verify()
    {
        using var h = new HostileRepository();
        await h.T.BackupAsync("g", ("vda.0", V0));
        var path = Path.Combine(h.Group("g"), "group.json");
        HostileRepository.EditJson(path, o => o["groupName"] = "someone-else");

        var report = await h.T.Repo.VerifyAsync(null, null, null, CancellationToken.None);
        Assert.False(report.Ok);
        Assert.Contains(report.Problems, p => p.Contains("group.json", StringComparison.Ordinal) && p.Contains("MAC does not match", StringComparison.Ordinal));
    }

    [Fact]
    public async Task A_damaged_group_document_is_reported_by_verify()
    {
        using var h = new HostileRepository();
        await h.T.BackupAsync("g", ("vda.0", V0));
        var path = Path.Combine(h.Group("g"), "group.json");
        var bytes = File.ReadAllBytes(path);
        bytes[bytes.Length / 2] ^= 0x04;
        File.WriteAllBytes(path, bytes);

        var report = await h.T.Repo.VerifyAsync("g", null, null, CancellationToken.None);
        Assert.False(report.Ok);
        Assert.Contains(report.Problems, p => p.Contains(path, StringComparison.Ordinal));
    }

    [Fact]
    public void An_edited_repository_document_is_refused_at_open()
    {
        using var t = new TempRepository();
        var path = Path.Combine(t.RepoDir, "repository.json");
        HostileRepository.EditJson(path, o => o["defaultBlockSize"] = 4096);

        var e = Assert.Throws<RepositoryCorruptException>(() => t.Reopen());
        Assert.Contains("repository.json: its MAC does not match", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_document_without_its_mac_is_refused()
    {
        using var h = new HostileRepository();
        var p0 = await h.T.BackupAsync("g", ("vda.0", V0));
        HostileRepository.EditJson(h.PointFile("g", p0.PointId), o => o.Remove("mac"));

        var e = Assert.Throws<RepositoryCorruptException>(() => h.T.Repo.FindPoint(p0.PointId));
        Assert.Contains("no 'mac' field", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task An_edited_journal_is_refused_at_open()
    {
        using var t = new TempRepository();
        await t.BackupAsync("g", ("vda.0", V0));
        t.Repo.FaultHook = phase => throw new SimulatedCrashException(phase);
        await Assert.ThrowsAsync<SimulatedCrashException>(() => t.BackupAsync("g", ("vda.0", V1)));
        var journal = Path.Combine(t.RepoDir, "groups", "g", "journal.json");
        HostileRepository.EditJson(journal, o => o["files"]![0]!["fileKey"] = "other");

        var e = Assert.Throws<RepositoryCorruptException>(() => t.Reopen());
        Assert.Contains("journal.json", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_format_1_repository_is_upgraded_at_open_and_keeps_its_points()
    {
        using var t = new TempRepository();
        var p0 = await t.BackupAsync("g", ("vda.0", V0));
        var p1 = await t.BackupAsync("g", ("vda.0", V1));
        // What version 1 wrote: the same documents without MACs.
        var docs = Directory.GetFiles(t.RepoDir, "*.json", SearchOption.AllDirectories);
        foreach (var doc in docs)
        {
            HostileRepository.EditJson(doc, o => o.Remove("mac"));
        }
        HostileRepository.EditJson(Path.Combine(t.RepoDir, "repository.json"), o => o["version"] = 1);

        var repo = t.Reopen();
        Assert.Equal(2, JsonNode.Parse(File.ReadAllText(Path.Combine(t.RepoDir, "repository.json")))!["version"]!.GetValue<int>());
        Assert.All(docs, d => Assert.StartsWith("hmac-sha256:", JsonNode.Parse(File.ReadAllText(d))!["mac"]!.GetValue<string>(), StringComparison.Ordinal));
        Assert.Equal(V0, await t.RestoreAsync(p0.PointId, "vda.0"));
        Assert.Equal(V1, await t.RestoreAsync(p1.PointId, "vda.0"));
        Assert.True((await repo.VerifyAsync(null, null, null, CancellationToken.None)).Ok);
    }

    [Fact]
    public async Task A_format_1_repository_with_a_path_for_a_name_is_not_upgraded()
    {
        using var h = new HostileRepository();
        var p0 = await h.T.BackupAsync("g", ("vda.0", V0));
        foreach (var doc in Directory.GetFiles(h.T.RepoDir, "*.json", SearchOption.AllDirectories))
        {
            HostileRepository.EditJson(doc, o => o.Remove("mac"));
        }
        HostileRepository.EditJson(h.PointFile("g", p0.PointId), o => o["files"]![0]!["fileKey"] = "../../../../outside/secret");
        HostileRepository.EditJson(Path.Combine(h.T.RepoDir, "repository.json"), o => o["version"] = 1);

        var e = Assert.Throws<RepositoryCorruptException>(() => h.T.Reopen());
        Assert.Contains("files[0].fileKey", e.Message, StringComparison.Ordinal);
        Assert.Equal(1, JsonNode.Parse(File.ReadAllText(Path.Combine(h.T.RepoDir, "repository.json")))!["version"]!.GetValue<int>());
        h.AssertOutsideUntouched();
    }

    /// <summary>Issue 16 (5): a backup that fails on a full repository leaves no points/.ID.json.*.tmp.</summary>
    [Trait("Category", "Integration")] // mounts a tmpfs: needs root
    [Fact]
    public async Task A_backup_failing_on_a_full_repository_leaves_no_temp_files()
    {
        var root = Path.Combine(Path.GetTempPath(), $"bkd-full-{Guid.NewGuid():N}");
        var mount = Path.Combine(root, "repo");
        Directory.CreateDirectory(mount);
        RepositoryDirectoryTests.Run("mount", "-t", "tmpfs", "-o", "size=1M", "tmpfs", mount);
        try
        {
            using var repo = BackupRepository.Open(mount);
            repo.BlockSize = TempRepository.BlockSize;
            var source = Path.Combine(root, "src");
            File.WriteAllBytes(source, V0);
            using (var session = repo.BeginBackup("g", "vm-g"))
            {
                await session.AddFileAsync("vda.0", source, new SourceFileInfo(source, "raw", null, V0.Length), null, CancellationToken.None);
                // The repository fills up before the point is published.
                session.AttachMetadata("domain.xml", new string('x', 2 << 20));
                Assert.Throws<IOException>(() => session.Commit());
            }
            Assert.Empty(Directory.GetFiles(mount, "*.tmp", SearchOption.AllDirectories));
            Assert.Empty(repo.ListPoints());
            Assert.False(File.Exists(Path.Combine(mount, "groups", "g", "journal.json")), "the failed backup was rolled back");
        }
        finally
        {
            RepositoryDirectoryTests.Run("umount", mount);
            Directory.Delete(root, recursive: true);
        }
    }
}
