using Backupd.Storage.Repository;
using Backupd.Storage.Tests.Delta;

namespace Backupd.Storage.Tests.Repository;

public class RepositoryTests
{
    [Fact]
    public async Task Every_restore_point_restores_its_own_content()
    {
        using var t = new TempRepository();
        var v0 = TempRepository.Content(1, 40, 123);
        var v1 = TempRepository.Edit(2, v0, TestFiles.Edit.InPlace);
        var v2 = TempRepository.Edit(3, v1, TestFiles.Edit.Grow);
        var v3 = TempRepository.Edit(4, v2, TestFiles.Edit.Truncate);
        var versions = new[] { v0, v1, v2, v3 };
        var points = new List<RestorePointInfo>();
        foreach (var v in versions)
        {
            points.Add(await t.BackupAsync("g1", ("vda.0", v)));
        }
        for (var i = 0; i < versions.Length; i++)
        {
            Assert.Equal(versions[i], await t.RestoreAsync(points[i].PointId, "vda.0"));
        }
        var listed = t.Repo.ListPoints("g1");
        Assert.Equal(points.Select(p => p.PointId).Reverse(), listed.Select(p => p.PointId));
        Assert.Equal("<domain><name>g1</name></domain>", listed[0].Metadata["domain.xml"]);
        var report = await t.Repo.VerifyAsync(null, null, null, CancellationToken.None);
        Assert.True(report.Ok, string.Join("\n", report.Problems));
        Assert.Equal(4, report.VersionsChecked);
    }

    [Fact]
    public async Task Second_backup_writes_only_changed_blocks_and_keeps_holes()
    {
        using var t = new TempRepository();
        var v0 = TempRepository.Content(5, 200);
        var v1 = (byte[])v0.Clone();
        new Random(6).NextBytes(v1.AsSpan(17 * TempRepository.BlockSize, TempRepository.BlockSize));
        await t.BackupAsync("g", ("disk", v0));
        var p1 = await t.BackupAsync("g", ("disk", v1));
        var f = p1.Files.Single();
        Assert.Equal(1, f.BlocksChanged);
        Assert.Equal(TempRepository.BlockSize, f.MirrorBytesWritten);
        Assert.True(f.UndoBytesWritten < TempRepository.BlockSize + 200, $"undo {f.UndoBytesWritten}");
        Assert.True(f.BytesRead < v1.Length, "holes are not read");

        var mirror = new FileInfo(Path.Combine(t.RepoDir, "groups", "g", "files", "disk", "mirror"));
        Assert.Equal(v1.Length, mirror.Length);
        Assert.True(AllocatedBytes(mirror.FullName) < v1.Length * 3 / 4, "the mirror is sparse");
        var target = t.Path_("restored");
        await t.Repo.RestoreFileAsync(p1.PointId, "disk", target, null, CancellationToken.None);
        Assert.True(AllocatedBytes(target) < v1.Length * 3 / 4, "the restored file is sparse");
    }

    private static long AllocatedBytes(string path)
    {
        var psi = new System.Diagnostics.ProcessStartInfo("stat", ["-c", "%b %B", path]) { RedirectStandardOutput = true };
        using var p = System.Diagnostics.Process.Start(psi)!;
        var parts = p.StandardOutput.ReadToEnd().Trim().Split(' ');
        p.WaitForExit();
        return long.Parse(parts[0]) * long.Parse(parts[1]);
    }

    [Fact]
    public async Task Unchanged_file_keeps_its_version_and_files_not_added_are_carried_over()
    {
        using var t = new TempRepository();
        var top = TempRepository.Content(7, 10);
        var backing = TempRepository.Content(8, 12);
        var p0 = await t.BackupAsync("vm", ("vda.0", top), ("vda.1", backing));
        var top2 = TempRepository.Edit(9, top, TestFiles.Edit.InPlace);
        var p1 = await t.BackupAsync("vm", ("vda.0", top2), ("vda.1", backing));
        var p2 = await t.BackupAsync("vm", ("vda.0", top2));

        var b1 = p1.Files.Single(f => f.FileKey == "vda.1");
        Assert.Equal(0, b1.BlocksChanged);
        Assert.Equal(0, b1.BytesWritten);
        Assert.Equal(p0.PointId, b1.VersionId);
        Assert.Equal(2, p2.Files.Count);
        Assert.Equal(backing, await t.RestoreAsync(p2.PointId, "vda.1"));
        Assert.Equal(top, await t.RestoreAsync(p0.PointId, "vda.0"));
        Assert.Equal(top2, await t.RestoreAsync(p2.PointId, "vda.0"));
    }

    [Fact]
    public async Task Delete_oldest_and_middle_points_keeps_the_others_exact()
    {
        using var t = new TempRepository();
        var versions = new List<byte[]> { TempRepository.Content(10, 30, 5) };
        var edits = new[] { TestFiles.Edit.InPlace, TestFiles.Edit.Grow, TestFiles.Edit.ZeroRange, TestFiles.Edit.Truncate, TestFiles.Edit.Relocate };
        for (var i = 0; i < edits.Length; i++)
        {
            versions.Add(TempRepository.Edit(20 + i, versions[^1], edits[i]));
        }
        var points = new List<RestorePointInfo>();
        foreach (var v in versions)
        {
            points.Add(await t.BackupAsync("g", ("f", v)));
        }
        t.Repo.DeletePoint(points[2].PointId); // middle: merge
        t.Repo.DeletePoint(points[0].PointId); // oldest: drop
        t.Repo.DeletePoint(points[3].PointId); // middle again, after a merge
        Assert.Throws<RestorePointNotFoundException>(() => t.Repo.DeletePoint(points[0].PointId));

        foreach (var i in new[] { 1, 4, 5 })
        {
            Assert.Equal(versions[i], await t.RestoreAsync(points[i].PointId, "f"));
        }
        Assert.Equal(3, t.Repo.ListPoints().Count);
        var undoDir = Path.Combine(t.RepoDir, "groups", "g", "files", "f", "undo");
        Assert.Equal(2, Directory.GetFiles(undoDir).Length);
        Assert.True((await t.Repo.VerifyAsync("g", null, null, CancellationToken.None)).Ok);
    }

    [Fact]
    public async Task Deleting_the_newest_point_turns_the_mirror_back_into_the_previous_version()
    {
        using var t = new TempRepository();
        var v0 = TempRepository.Content(40, 30, 5);
        var v1 = TempRepository.Edit(41, v0, TestFiles.Edit.Grow);
        var v2 = TempRepository.Edit(42, v1, TestFiles.Edit.Truncate);
        var p0 = await t.BackupAsync("g", ("f", v0));
        var p1 = await t.BackupAsync("g", ("f", v1));
        var p2 = await t.BackupAsync("g", ("f", v2));

        t.Repo.DeletePoint(p2.PointId);
        t.Repo.DeletePoint(p1.PointId); // newest again, after the first roll-back

        var fileDir = Path.Combine(t.RepoDir, "groups", "g", "files", "f");
        Assert.Equal(v0, await File.ReadAllBytesAsync(Path.Combine(fileDir, "mirror"))); // the mirror itself, not a reconstruction
        Assert.Empty(Directory.GetFiles(Path.Combine(fileDir, "undo")));
        Assert.Equal([p0.PointId], t.Repo.ListPoints().Select(p => p.PointId));
        Assert.True((await t.Repo.VerifyAsync("g", null, null, CancellationToken.None)).Ok); // the rebuilt signature matches
        // The next backup compares against the rebuilt signature and still reconstructs v0 exactly.
        var p3 = await t.BackupAsync("g", ("f", v2));
        Assert.Equal(v2, await t.RestoreAsync(p3.PointId, "f"));
        Assert.Equal(v0, await t.RestoreAsync(p0.PointId, "f"));
    }

    [Fact]
    public async Task Deleting_the_newest_point_is_refused_without_change_when_the_undo_record_is_damaged()
    {
        using var t = new TempRepository();
        var v0 = TempRepository.Content(50, 20, 5);
        var v1 = TempRepository.Edit(51, v0, TestFiles.Edit.InPlace);
        await t.BackupAsync("g", ("f", v0));
        var p1 = await t.BackupAsync("g", ("f", v1));
        var undo = Directory.GetFiles(Path.Combine(t.RepoDir, "groups", "g", "files", "f", "undo")).Single();
        var bytes = await File.ReadAllBytesAsync(undo);
        bytes[^10] ^= 0x01;
        await File.WriteAllBytesAsync(undo, bytes);

        var ex = Assert.Throws<RepositoryCorruptException>(() => t.Repo.DeletePoint(p1.PointId));
        Assert.Contains(undo, ex.Message, StringComparison.Ordinal);
        Assert.Equal(2, t.Repo.ListPoints().Count);
        Assert.Equal(v1, await t.RestoreAsync(p1.PointId, "f"));
    }

    [Fact]
    public async Task Deleting_the_only_point_removes_the_file()
    {
        using var t = new TempRepository();
        var p = await t.BackupAsync("g", ("f", TempRepository.Content(1, 3)));
        t.Repo.DeletePoint(p.PointId);
        Assert.Empty(t.Repo.ListPoints());
        Assert.False(Directory.Exists(Path.Combine(t.RepoDir, "groups", "g", "files", "f")));
    }

    [Fact]
    public async Task Flipped_bit_in_the_mirror_is_reported_with_its_block()
    {
        using var t = new TempRepository();
        var v0 = TempRepository.Content(30, 20);
        var p0 = await t.BackupAsync("g", ("f", v0));
        var mirror = Path.Combine(t.RepoDir, "groups", "g", "files", "f", "mirror");
        var dataBlock = Enumerable.Range(0, 20).First(b => v0.AsSpan(b * TempRepository.BlockSize, TempRepository.BlockSize).ContainsAnyExcept((byte)0) && b > 2);
        FlipBit(mirror, (dataBlock * TempRepository.BlockSize) + 100);

        var report = await t.Repo.VerifyAsync(null, null, null, CancellationToken.None);
        Assert.False(report.Ok);
        Assert.Contains($"block {dataBlock} ", Assert.Single(report.Problems));
        var target = t.Path_("out");
        await Assert.ThrowsAsync<RepositoryCorruptException>(() => t.Repo.RestoreFileAsync(p0.PointId, "f", target, null, CancellationToken.None));
        Assert.False(File.Exists(target), "a restore that fails verification leaves no file");
    }

    [Fact]
    public async Task Flipped_bit_in_an_undo_record_is_reported()
    {
        using var t = new TempRepository();
        var v0 = TempRepository.Content(40, 20);
        var v1 = TempRepository.Edit(41, v0, TestFiles.Edit.InPlace);
        var p0 = await t.BackupAsync("g", ("f", v0));
        var p1 = await t.BackupAsync("g", ("f", v1));
        var undo = Path.Combine(t.RepoDir, "groups", "g", "files", "f", "undo", p0.PointId + ".undo");
        FlipBit(undo, new FileInfo(undo).Length / 2);

        var report = await t.Repo.VerifyAsync("g", null, null, CancellationToken.None);
        Assert.False(report.Ok);
        var problem = Assert.Single(report.Problems);
        Assert.Contains(p0.PointId, problem);
        Assert.Contains("undo", problem);
        Assert.True((await t.Repo.VerifyAsync(null, p1.PointId, null, CancellationToken.None)).Ok, "the newest point does not depend on that record");
        await Assert.ThrowsAsync<RepositoryCorruptException>(() => t.RestoreAsync(p0.PointId, "f"));
        Assert.Equal(v1, await t.RestoreAsync(p1.PointId, "f"));
    }

    private static void FlipBit(string path, long offset)
    {
        using var fs = new FileStream(path, FileMode.Open, FileAccess.ReadWrite);
        fs.Position = offset;
        var b = fs.ReadByte();
        fs.Position = offset;
        fs.WriteByte((byte)(b ^ 0x10));
    }

    [Fact]
    public async Task A_second_writer_of_the_same_group_is_refused_and_other_groups_are_not_blocked()
    {
        using var t = new TempRepository();
        using var first = t.Repo.BeginBackup("g", "vm");
        Assert.Throws<RepositoryBusyException>(() => t.Repo.BeginBackup("g", "vm"));
        using var other = BackupRepository.Open(t.RepoDir).BeginBackup("h", "vm2");
        var src = t.WriteSource("x", TempRepository.Content(1, 2));
        await other.AddFileAsync("x", src, new SourceFileInfo(src, "raw", null, 0), null, CancellationToken.None);
        other.Commit();
        Assert.Single(t.Repo.ListPoints());
    }

    [Fact]
    public async Task Restore_refuses_an_existing_target_and_unknown_names()
    {
        using var t = new TempRepository();
        var p = await t.BackupAsync("g", ("f", TempRepository.Content(1, 2)));
        var existing = t.WriteSource("exists", [1, 2, 3]);
        var e = await Assert.ThrowsAsync<RepositoryException>(() => t.Repo.RestoreFileAsync(p.PointId, "f", existing, null, CancellationToken.None));
        Assert.Contains("refusing to overwrite", e.Message);
        Assert.Equal([1, 2, 3], File.ReadAllBytes(existing));
        await Assert.ThrowsAsync<RestorePointNotFoundException>(() => t.Repo.RestoreFileAsync(p.PointId, "nope", t.Path_("n"), null, CancellationToken.None));
        await Assert.ThrowsAsync<RestorePointNotFoundException>(() => t.Repo.RestoreFileAsync("20990101T000000Z-00000000", "f", t.Path_("n"), null, CancellationToken.None));
    }

    [Theory]
    [InlineData("../x")]
    [InlineData("a/b")]
    [InlineData("..")]
    [InlineData(".hidden")]
    [InlineData("tab\there")]
    [InlineData("")]
    public async Task Unsafe_file_keys_are_rejected(string key)
    {
        using var t = new TempRepository();
        using var s = t.Repo.BeginBackup("g", "vm");
        var src = t.WriteSource("x", [1]);
        await Assert.ThrowsAsync<ArgumentException>(() => s.AddFileAsync(key, src, new SourceFileInfo(src, "raw", null, 1), null, CancellationToken.None));
    }

    [Fact]
    public async Task Dispose_without_commit_rolls_back_every_file()
    {
        using var t = new TempRepository();
        var a0 = TempRepository.Content(50, 20);
        var p0 = await t.BackupAsync("g", ("a", a0));
        using (var s = t.Repo.BeginBackup("g", "vm"))
        {
            var src = t.WriteSource("a2", TempRepository.Edit(51, a0, TestFiles.Edit.AllZero));
            await s.AddFileAsync("a", src, new SourceFileInfo(src, "raw", null, 0), null, CancellationToken.None);
            var srcB = t.WriteSource("b", TempRepository.Content(52, 5));
            await s.AddFileAsync("b", srcB, new SourceFileInfo(srcB, "raw", null, 0), null, CancellationToken.None);
        }
        Assert.Single(t.Repo.ListPoints());
        Assert.Equal(a0, File.ReadAllBytes(Path.Combine(t.RepoDir, "groups", "g", "files", "a", "mirror")));
        Assert.False(Directory.Exists(Path.Combine(t.RepoDir, "groups", "g", "files", "b")));
        Assert.False(File.Exists(Path.Combine(t.RepoDir, "groups", "g", "journal.json")));
        Assert.True((await t.Repo.VerifyAsync(null, null, null, CancellationToken.None)).Ok);
        Assert.Equal(a0, await t.RestoreAsync(p0.PointId, "a"));
    }
}

public class RepositoryLookupTests
{
    [Theory]
    [InlineData("../../etc/passwd")]
    [InlineData("nope")]
    public void FindPoint_returns_null_for_ids_that_name_no_point(string id)
    {
        using var t = new TempRepository();
        Assert.Null(t.Repo.FindPoint(id));
        Assert.Throws<RestorePointNotFoundException>(() => t.Repo.DeletePoint(id));
    }

    [Fact]
    public void Open_refuses_a_directory_with_foreign_files()
    {
        using var t = new TempRepository();
        var dir = t.Path_("foreign");
        Directory.CreateDirectory(dir);
        File.WriteAllText(Path.Combine(dir, "notes.txt"), "x");
        var e = Assert.Throws<RepositoryException>(() => BackupRepository.Open(dir));
        Assert.Contains("not a backupd repository", e.Message);
    }
}
