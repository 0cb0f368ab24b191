using Backupd.Storage.Repository;

namespace Backupd.Storage.Tests.Repository;

/// <summary>
/// The reproductions of issue 16 (items 1 and 2): names in documents that are paths, and links planted in the
/// repository. Names are forged with a valid MAC (someone who can read the key), so the name checks are tested on
/// their own. Each must fail with an error naming the file and field or path, and leave everything outside alone.
/// </summary>
public class HostileRepositoryTests
{
    private static readonly byte[] V0 = TempRepository.Content(1, 12, 100);
    private static readonly byte[] V1 = TempRepository.Edit(2, V0, Delta.TestFiles.Edit.InPlace);

    public static TheoryData<string> PathFileKeys => new()
    {
        "../../../../outside/secret",
        "OUTSIDE/secret", // replaced by the absolute path of the outside directory
        "a/b",
        "..",
        ".hidden",
    };

    [Theory]
    [MemberData(nameof(PathFileKeys))]
    public async Task A_file_key_that_is_a_path_is_refused_by_restore_verify_and_list(string key)
    {
        using var h = new HostileRepository();
        key = key.Replace("OUTSIDE", h.Outside, StringComparison.Ordinal);
        var p0 = await h.T.BackupAsync("g", ("vda.0", V0));
        h.Forge(p0, d => d with { Files = [d.Files[0] with { FileKey = key }] });

        var target = h.T.Path_("restored");
        var e = await Assert.ThrowsAsync<RepositoryCorruptException>(() => h.T.Repo.RestoreFileAsync(p0.PointId, key, target, null, CancellationToken.None));
        Assert.Contains("files[0].fileKey", e.Message, StringComparison.Ordinal);
        Assert.Contains(p0.PointId + ".json", e.Message, StringComparison.Ordinal);
        Assert.False(File.Exists(target));

        var report = await h.T.Repo.VerifyAsync(null, null, null, CancellationToken.None);
        Assert.False(report.Ok);
        Assert.Contains(report.Problems, p => p.Contains("files[0].fileKey", StringComparison.Ordinal));
        Assert.Equal(0, report.VersionsChecked);
        Assert.Throws<RepositoryCorruptException>(() => h.T.Repo.ListPoints());
        h.AssertOutsideUntouched();
    }

    [Fact]
    public async Task A_version_id_that_is_a_path_makes_the_next_backup_fail_without_writing_outside()
    {
        using var h = new HostileRepository();
        var p0 = await h.T.BackupAsync("g", ("vda.0", V0));
        h.Forge(p0, d => d with { Files = [d.Files[0] with { VersionId = "../../../../../outside/pwned" }] });

        var e = await Assert.ThrowsAsync<RepositoryCorruptException>(() => h.T.BackupAsync("g", ("vda.0", V1)));
        Assert.Contains("files[0].versionId", e.Message, StringComparison.Ordinal);
        Assert.Empty(Directory.GetFiles(h.T.Root, "pwned*", SearchOption.AllDirectories));
        h.AssertOutsideUntouched();
    }

    [Theory]
    [InlineData("ABSOLUTE")]
    [InlineData("../../../../outside/victimdir2")]
    public async Task Forgetting_a_point_whose_file_key_is_a_path_deletes_nothing_outside(string key)
    {
        using var h = new HostileRepository();
        Directory.CreateDirectory(Path.Combine(h.Outside, "victimdir"));
        File.WriteAllText(Path.Combine(h.Outside, "victimdir", "keep"), "x");
        Directory.CreateDirectory(Path.Combine(h.Outside, "victimdir2"));
        File.WriteAllText(Path.Combine(h.Outside, "victimdir2", "keep"), "y");
        var before = HostileRepository.Snapshot(h.Outside);
        key = key == "ABSOLUTE" ? Path.Combine(h.Outside, "victimdir") : key;
        var p0 = await h.T.BackupAsync("g", ("vda.0", V0));
        h.Forge(p0, d => d with { Files = [d.Files[0] with { FileKey = key }] });

        var e = Assert.Throws<RepositoryCorruptException>(() => h.T.Repo.DeletePoint(p0.PointId));
        Assert.Contains("files[0].fileKey", e.Message, StringComparison.Ordinal);
        Assert.Equal(before, HostileRepository.Snapshot(h.Outside));
        Assert.True(File.Exists(h.PointFile("g", p0.PointId)), "the point is still there");
    }

    [Fact]
    public async Task Forgetting_a_point_whose_group_id_leaves_the_repository_creates_nothing_outside()
    {
        using var h = new HostileRepository();
        var p0 = await h.T.BackupAsync("g", ("vda.0", V0));
        h.Forge(p0, d => d with { GroupId = "../../../outside/g" });

        var e = Assert.Throws<RepositoryCorruptException>(() => h.T.Repo.DeletePoint(p0.PointId));
        Assert.Contains("'groupId'", e.Message, StringComparison.Ordinal);
        Assert.False(Directory.Exists(Path.Combine(h.Outside, "g")));
        h.AssertOutsideUntouched();
    }

    [Fact]
    public async Task A_point_document_of_another_group_or_name_is_refused()
    {
        using var h = new HostileRepository();
        var a = await h.T.BackupAsync("a", ("vda.0", V0));
        var b = await h.T.BackupAsync("b", ("vda.0", V1));
        // A valid point of group a, planted (with a valid MAC for its new place) in group b.
        var doc = h.T.Repo.ReadPoint("a", a.PointId);
        h.T.Repo.Documents.Write(h.PointFile("b", a.PointId), doc);

        var e = Assert.Throws<RepositoryCorruptException>(() => h.T.Repo.ListPoints("b"));
        Assert.Contains("lies at point", e.Message, StringComparison.Ordinal);
        // Copied without re-signing: its MAC is bound to its old name.
        File.Delete(h.PointFile("b", a.PointId));
        File.Copy(h.PointFile("b", b.PointId), h.PointFile("b", "20990101T000000Z-00000000"));
        e = Assert.Throws<RepositoryCorruptException>(() => h.T.Repo.ListPoints("b"));
        Assert.True(e.Message.Contains("MAC does not match", StringComparison.Ordinal), e.Message);
    }

    [Fact]
    public async Task A_group_document_whose_group_id_is_a_path_fails_the_backup()
    {
        using var h = new HostileRepository();
        await h.T.BackupAsync("g", ("vda.0", V0));
        h.T.Repo.Documents.Write(Path.Combine(h.Group("g"), "group.json"), new GroupDocument("../../outside", "vm-g"));

        var e = await Assert.ThrowsAsync<RepositoryCorruptException>(() => h.T.BackupAsync("g", ("vda.0", V1)));
        Assert.Contains("group.json: field 'groupId'", e.Message, StringComparison.Ordinal);
        h.AssertOutsideUntouched();
    }

    [Fact]
    public async Task An_undo_directory_linked_outside_makes_the_backup_fail_and_writes_nothing_there()
    {
        using var h = new HostileRepository();
        var p0 = await h.T.BackupAsync("g", ("vda.0", V0));
        var dir = Path.Combine(h.Outside, "dir");
        Directory.CreateDirectory(dir);
        var before = HostileRepository.Snapshot(h.Outside);
        File.CreateSymbolicLink(Path.Combine(h.FileDir("g", "vda.0"), "undo"), dir);

        var e = await Assert.ThrowsAsync<RepositoryCorruptException>(() => h.T.BackupAsync("g", ("vda.0", V1)));
        Assert.Contains("undo", e.Message, StringComparison.Ordinal);
        Assert.Contains("symbolic link", e.Message, StringComparison.Ordinal);
        Assert.Equal(before, HostileRepository.Snapshot(h.Outside));
        Assert.Equal(V0, await h.T.RestoreAsync(p0.PointId, "vda.0")); // rolled back: the mirror is the old version
    }

    [Fact]
    public async Task A_mirror_linked_outside_is_never_written_read_or_verified_as_good()
    {
        using var h = new HostileRepository();
        var p0 = await h.T.BackupAsync("g", ("vda.0", V0));
        var victim = Path.Combine(h.Outside, "victim.img");
        var mirror = Path.Combine(h.FileDir("g", "vda.0"), "mirror");
        File.WriteAllBytes(victim, File.ReadAllBytes(mirror)); // looks like the mirror, so only the link gives it away
        var before = HostileRepository.Snapshot(h.Outside);
        File.Delete(mirror);
        File.CreateSymbolicLink(mirror, victim);

        var e = await Assert.ThrowsAsync<RepositoryCorruptException>(() => h.T.BackupAsync("g", ("vda.0", V1)));
        Assert.Contains(mirror, e.Message, StringComparison.Ordinal);
        var report = await h.T.Repo.VerifyAsync(null, null, null, CancellationToken.None);
        Assert.False(report.Ok);
        Assert.Contains(report.Problems, p => p.Contains("symbolic link", StringComparison.Ordinal) && p.Contains(mirror, StringComparison.Ordinal));
        await Assert.ThrowsAsync<RepositoryCorruptException>(() => h.T.RestoreAsync(p0.PointId, "vda.0"));
        Assert.Equal(before, HostileRepository.Snapshot(h.Outside));
    }

    [Fact]
    public async Task A_points_directory_linked_elsewhere_is_refused()
    {
        using var h = new HostileRepository();
        await h.T.BackupAsync("g", ("vda.0", V0));
        var points = Path.Combine(h.Group("g"), "points");
        Directory.Move(points, Path.Combine(h.Outside, "points"));
        File.CreateSymbolicLink(points, "..");

        var e = Assert.Throws<RepositoryCorruptException>(() => h.T.Repo.ListPoints("g"));
        Assert.Contains(points, e.Message, StringComparison.Ordinal);
        await Assert.ThrowsAsync<RepositoryCorruptException>(() => h.T.BackupAsync("g", ("vda.0", V1)));
    }

    [Fact]
    public async Task A_group_directory_linked_outside_is_refused_at_open()
    {
        using var h = new HostileRepository();
        await h.T.BackupAsync("g", ("vda.0", V0));
        Directory.CreateDirectory(Path.Combine(h.Outside, "evil", "points"));
        var link = h.Group("evil");
        File.CreateSymbolicLink(link, Path.Combine(h.Outside, "evil"));
        var before = HostileRepository.Snapshot(h.Outside);

        var e = Assert.Throws<RepositoryCorruptException>(() => h.T.Reopen());
        Assert.Contains(link, e.Message, StringComparison.Ordinal);
        Assert.Throws<RepositoryCorruptException>(() => h.T.Repo.BeginBackup("evil", "evil"));
        Assert.Equal(before, HostileRepository.Snapshot(h.Outside));
    }

    [Fact]
    public async Task A_fifo_in_place_of_the_mirror_is_refused_without_blocking()
    {
        using var h = new HostileRepository();
        var p0 = await h.T.BackupAsync("g", ("vda.0", V0));
        var mirror = Path.Combine(h.FileDir("g", "vda.0"), "mirror");
        File.Delete(mirror);
        using (var mkfifo = System.Diagnostics.Process.Start("mkfifo", [mirror]))
        {
            await mkfifo.WaitForExitAsync();
            Assert.Equal(0, mkfifo.ExitCode);
        }
        var restore = h.T.RestoreAsync(p0.PointId, "vda.0");
        Assert.True(await Task.WhenAny(restore, Task.Delay(TimeSpan.FromSeconds(30))) == restore, "a FIFO must not block the restore");
        var e = await Assert.ThrowsAsync<RepositoryCorruptException>(() => restore);
        Assert.Contains("a FIFO", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Point_ids_from_callers_outside_the_grammar_name_no_point()
    {
        using var t = new TempRepository();
        Assert.Null(t.Repo.FindPoint("../../outside/x"));
        Assert.Null(t.Repo.FindPoint("20261126T093323Z-97B7EC7C")); // upper-case hex: not an id backupd makes
        Assert.Throws<ArgumentException>(() => t.Repo.BeginBackup("../g", "x"));
        Assert.False(Directory.Exists(Path.Combine(t.Root, "g")));
    }
}
