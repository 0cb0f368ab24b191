using Backupd.Storage.Repository;
using Backupd.Storage.Tests.Delta;

namespace Backupd.Storage.Tests.Repository;

/// <summary>
/// Restore clones the mirror's ranges where the file system shares extents and writes its hashed buffer elsewhere
/// (undo-record blocks, ext4 or tmpfs, another file system, or when told to): every path byte-identical, holes kept,
/// the digest still checked. (The test directories are on ext4 here: the clone is refused and counted as such.)
/// </summary>
public class RestoreCopyTests
{
    private static byte[] Image(int seed) => TempRepository.Content(seed, 48, extra: 1234); // a short last block

    private static long DataBytes(byte[] content)
    {
        long n = 0;
        for (var o = 0; o < content.Length; o += TempRepository.BlockSize)
        {
            var block = content.AsSpan(o, Math.Min(TempRepository.BlockSize, content.Length - o));
            n += block.ContainsAnyExcept((byte)0) ? block.Length : 0;
        }
        return n;
    }

    /// <summary>The file's bytes equal <paramref name="want"/>, and exactly its all-zero blocks are holes.</summary>
    private static void AssertSameWithHoles(byte[] want, string path)
    {
        Assert.Equal(want, File.ReadAllBytes(path));
        using var h = File.OpenHandle(path);
        for (long o = 0; o < want.Length; o += TempRepository.BlockSize)
        {
            var zero = !want.AsSpan((int)o, (int)Math.Min(TempRepository.BlockSize, want.Length - o)).ContainsAnyExcept((byte)0);
            var hole = Native.NextData(h, o) != o;
            Assert.True(zero == hole, $"block at {o}: zero {zero}, hole {hole}");
        }
    }

    [Fact]
    public async Task Newest_point_is_cloned_or_written_byte_identical_with_its_holes()
    {
        using var t = new TempRepository();
        var v = Image(1);
        var p = await t.BackupAsync("g", ("disk", v));
        var target = t.Path_("restored");
        var report = await t.Repo.RestoreFileAsync(p.PointId, "disk", target, null, CancellationToken.None);
        AssertSameWithHoles(v, target);
        Assert.Equal(DataBytes(v), report.ClonedBytes + report.WrittenBytes);
        Assert.Equal(report.CloneRefused, report.ClonedBytes == 0); // all-or-nothing for the newest point: every data block is the mirror's
    }

    [Fact]
    public async Task Older_point_copies_the_mirror_ranges_and_writes_the_undone_blocks_from_its_buffer()
    {
        using var t = new TempRepository();
        var v0 = Image(2);
        var v1 = (byte[])v0.Clone();
        new Random(3).NextBytes(v1.AsSpan(5 * TempRepository.BlockSize, 2 * TempRepository.BlockSize));
        v1.AsSpan(20 * TempRepository.BlockSize, TempRepository.BlockSize).Clear(); // a block that became zero
        var p0 = await t.BackupAsync("g", ("disk", v0));
        await t.BackupAsync("g", ("disk", v1));
        var target = t.Path_("restored-old");
        var report = await t.Repo.RestoreFileAsync(p0.PointId, "disk", target, null, CancellationToken.None);
        AssertSameWithHoles(v0, target);
        Assert.True(report.WrittenBytes >= 2 * TempRepository.BlockSize, "blocks from the undo record are written from the buffer");
        Assert.Equal(DataBytes(v0), report.ClonedBytes + report.WrittenBytes);
    }

    [Fact]
    public async Task Without_cloning_every_byte_is_written_from_the_buffer()
    {
        using var t = new TempRepository();
        var v0 = Image(4);
        var v1 = TempRepository.Edit(5, v0, TestFiles.Edit.InPlace);
        var p0 = await t.BackupAsync("g", ("disk", v0));
        var p1 = await t.BackupAsync("g", ("disk", v1));
        t.Repo.CloneFromMirror = false;
        foreach (var (point, want) in new[] { (p0, v0), (p1, v1) })
        {
            var target = t.Path_($"restored-{point.PointId}");
            var report = await t.Repo.RestoreFileAsync(point.PointId, "disk", target, null, CancellationToken.None);
            AssertSameWithHoles(want, target);
            Assert.Equal(0, report.ClonedBytes);
            Assert.Equal(DataBytes(want), report.WrittenBytes);
        }
    }

    [Fact]
    public async Task A_target_on_another_file_system_falls_back_to_writing_the_buffer()
    {
        Assert.True(Directory.Exists("/dev/shm"), "/dev/shm (tmpfs) is needed as a second file system");
        using var t = new TempRepository();
        var v = Image(6);
        var p = await t.BackupAsync("g", ("disk", v));
        var target = Path.Combine("/dev/shm", $"bkd-restore-{Guid.NewGuid():N}");
        try
        {
            var report = await t.Repo.RestoreFileAsync(p.PointId, "disk", target, null, CancellationToken.None);
            AssertSameWithHoles(v, target);
            Assert.NotEqual(Device(target), Device(t.RepoDir));
            Assert.True(report.CloneRefused, "no clone across file systems");
            Assert.Equal(0, report.ClonedBytes);
            Assert.Equal(DataBytes(v), report.WrittenBytes);
        }
        finally
        {
            File.Delete(target);
        }
    }

    private static string Device(string path)
    {
        var psi = new System.Diagnostics.ProcessStartInfo("stat", ["-c", "%d", path]) { RedirectStandardOutput = true };
        using var p = System.Diagnostics.Process.Start(psi)!;
        var output = p.StandardOutput.ReadToEnd().Trim();
        p.WaitForExit();
        return output;
    }

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public async Task A_flipped_byte_in_the_mirror_fails_the_restore_and_leaves_no_file(bool clone)
    {
        using var t = new TempRepository();
        var v0 = Image(7);
        var v1 = TempRepository.Edit(8, v0, TestFiles.Edit.InPlace);
        var p0 = await t.BackupAsync("g", ("disk", v0));
        var p1 = await t.BackupAsync("g", ("disk", v1));
        var mirror = Path.Combine(t.RepoDir, "groups", "g", "files", "disk", "mirror");
        // A data byte near the short last block that both points read from the mirror (the edit left it alone).
        var at = Enumerable.Range(0, v1.Length).Last(i => v1[i] != 0 && i < v0.Length && v0[i] == v1[i]);
        using (var fs = new FileStream(mirror, FileMode.Open, FileAccess.ReadWrite))
        {
            fs.Position = at;
            var b = fs.ReadByte();
            fs.Position = at;
            fs.WriteByte((byte)(b ^ 0x10));
        }
        t.Repo.CloneFromMirror = clone;
        foreach (var point in new[] { p1, p0 })
        {
            var target = t.Path_($"restored-{point.PointId}");
            var e = await Assert.ThrowsAsync<RepositoryCorruptException>(() => t.Repo.RestoreFileAsync(point.PointId, "disk", target, null, CancellationToken.None));
            Assert.Contains("digest", e.Message);
            Assert.False(File.Exists(target), "no partial file at the target name");
        }
    }
}
