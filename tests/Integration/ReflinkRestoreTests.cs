using System.Text.Json;
using Backupd.Integration.Fixtures;

namespace Backupd.Integration;

/// <summary>
/// The clone path of restore (FICLONERANGE) on a real reflink file system: an XFS made with reflink=1 on a loop
/// device over a file in /var/tmp. The repository and the restore target are on it, so the newest point's data
/// is shared with the mirror instead of copied; the restored file must still be byte-identical, keep its holes,
/// and its extents must be reported shared by the kernel (filefrag -v).
/// </summary>
[Trait("Category", "Integration")]
public sealed class ReflinkRestoreTests : IAsyncLifetime
{
    private const long MiB = TestVm.MiB;
    private readonly string backing = Path.Combine("/var/tmp", $"bkd-reflink-{Guid.NewGuid():N}.img");
    private readonly string mount = Directory.CreateTempSubdirectory("bkd-reflink-mnt-").FullName;
    private LoopDevice? loop;
    private bool mounted;

    public async Task InitializeAsync()
    {
        await using (var f = new FileStream(backing, FileMode.CreateNew)) f.SetLength(512 * MiB);
        loop = await LoopDevice.CreateAsync(512 * MiB, over: backing);
        await Tools.RunAsync("mkfs.xfs", "-q", "-m", "reflink=1", loop.Path);
        await Tools.RunAsync("mount", loop.Path, mount);
        mounted = true;
    }

    public async Task DisposeAsync()
    {
        if (mounted) await Tools.TryRunAsync("umount", mount);
        if (loop is not null) await loop.DisposeAsync();
        File.Delete(backing);
        Directory.Delete(mount, recursive: true);
    }

    [Fact]
    public async Task Newest_point_restored_on_XFS_with_reflink_shares_the_mirror_extents_and_is_byte_identical()
    {
        var source = Path.Combine(mount, "disk.img");
        var repository = Path.Combine(mount, "repo");
        var restored = Path.Combine(mount, "restored.img");
        // 16 MiB data, 16 MiB hole, 8 MiB data, 24 MiB hole at the end: holes must stay holes.
        await using (var f = new FileStream(source, FileMode.CreateNew))
        {
            f.SetLength(64 * MiB);
            var data = new byte[8 * MiB];
            new Random(12).NextBytes(data);
            f.Write(data);
            new Random(13).NextBytes(data);
            f.Write(data);
            f.Position = 32 * MiB;
            new Random(14).NextBytes(data);
            f.Write(data);
        }

        var backup = await BackupdProcess.RunAsync("backup", "--file", source, "--to", repository, "--json");
        Assert.True(backup.ExitCode == 0, backup.Stderr);
        var file = JsonDocument.Parse(backup.Stdout).RootElement.GetProperty("file").GetString()!;
        var restore = await BackupdProcess.RunAsync("restore", "--repository", repository, "--file", file, "--to", restored, "--json");

        Assert.True(restore.ExitCode == 0, restore.Stderr);
        var report = JsonDocument.Parse(restore.Stdout).RootElement;
        Assert.False(report.GetProperty("cloneRefused").GetBoolean(), restore.Stdout);
        Assert.Equal(24 * MiB, report.GetProperty("clonedBytes").GetInt64());
        Assert.Equal(0, report.GetProperty("writtenBytes").GetInt64());
        var (code, stdout, stderr) = await Tools.TryRunAsync("cmp", source, restored);
        Assert.True(code == 0, $"{restored} differs from {source}: {stdout}{stderr}");
        Assert.Equal(64 * MiB, new FileInfo(restored).Length);
        var frag = await Tools.RunAsync("filefrag", "-v", restored);
        var extents = frag.Split('\n').Where(l => l.TrimStart().Length > 0 && char.IsDigit(l.TrimStart()[0]) && l.Contains(':')).ToList();
        Assert.NotEmpty(extents);
        Assert.All(extents, l => Assert.Contains("shared", l));
        var allocated = long.Parse((await Tools.RunAsync("stat", "-c", "%b", restored)).Trim()) * 512;
        Assert.Equal(24 * MiB, allocated); // the holes are kept: only the data extents exist
    }
}
