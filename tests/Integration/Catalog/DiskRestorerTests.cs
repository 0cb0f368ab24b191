using System.Text.Json;
using Backupd.Daemon.Images;
using Backupd.Daemon.Restore;
using Backupd.Integration.Fixtures;
using Backupd.Storage.Catalog;

namespace Backupd.Integration.Catalog;

/// <summary>Chain restore with real qemu-img: references rewritten to the restored files, flatten, and clean failure.</summary>
[Trait("Category", "Integration")]
public sealed class DiskRestorerTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("bkd-restorer-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    private async Task<(string Top, string Base, IReadOnlyList<PlannedDisk> Plan, CopySource Source)> ChainAsync()
    {
        var original = Directory.CreateDirectory(Path.Combine(_dir, "original")).FullName;
        var basePath = Path.Combine(original, "base.qcow2");
        var top = Path.Combine(original, "top.qcow2");
        await Tools.RunAsync("qemu-img", "create", "-q", "-f", "qcow2", basePath, "8M");
        await Tools.RunAsync("qemu-io", "-f", "qcow2", "-c", "write -P 0x11 0 1M", basePath);
        await Tools.RunAsync("qemu-img", "create", "-q", "-f", "qcow2", "-b", basePath, "-F", "qcow2", top);
        await Tools.RunAsync("qemu-io", "-f", "qcow2", "-c", "write -P 0x22 1M 1M", top);
        var rows = new[]
        {
            new RestorePointFileRow { FileKey = "vda.0", Disk = "vda", Depth = 0, Format = "qcow2", SourcePath = top, BackingFile = basePath, VirtualSize = 8 << 20, FileSize = new FileInfo(top).Length },
            new RestorePointFileRow { FileKey = "vda.1", Disk = "vda", Depth = 1, Format = "qcow2", SourcePath = basePath, VirtualSize = 8 << 20, FileSize = new FileInfo(basePath).Length },
        };
        return (top, basePath, RestorePlan.Build("p1", rows, null), new CopySource(new Dictionary<string, string> { ["vda.0"] = top, ["vda.1"] = basePath }));
    }

    [Fact]
    public async Task A_restored_chain_references_only_the_restored_files_and_reads_like_the_original()
    {
        var (top, basePath, plan, source) = await ChainAsync();
        var target = RestoreDirectory.Prepare(Path.Combine(_dir, "out"), DiskRestorer.OutputNames(plan, false), create: true);
        long lastProgress = 0;

        var result = await new DiskRestorer(source).RestoreToDirectoryAsync("p1", plan, target, flatten: false, new SyncProgress(v => lastProgress = v), CancellationToken.None);

        var restoredTop = Assert.Single(result).ImagePath;
        Assert.Equal(Path.Combine(target.Path, "vda.qcow2"), restoredTop);
        var info = JsonDocument.Parse(await Tools.RunAsync("qemu-img", "info", "--output=json", restoredTop)).RootElement;
        Assert.Equal(Path.Combine(target.Path, "vda.1.qcow2"), info.GetProperty("backing-filename").GetString());
        Assert.True(await QemuImg.CompareAsync(top, restoredTop, CancellationToken.None));
        Assert.Equal(new FileInfo(top).Length + new FileInfo(basePath).Length, lastProgress);
        // The original base still has its own data and was not touched by the rebase.
        Assert.Equal(basePath, JsonDocument.Parse(await Tools.RunAsync("qemu-img", "info", "--output=json", top)).RootElement.GetProperty("backing-filename").GetString());
    }

    [Fact]
    public async Task Flatten_gives_one_standalone_image_per_disk()
    {
        var (top, _, plan, source) = await ChainAsync();
        var target = RestoreDirectory.Prepare(Path.Combine(_dir, "flat"), DiskRestorer.OutputNames(plan, true), create: true);

        var result = await new DiskRestorer(source).RestoreToDirectoryAsync("p1", plan, target, flatten: true, null, CancellationToken.None);

        var image = Assert.Single(result).ImagePath;
        Assert.Equal([image], Directory.GetFileSystemEntries(target.Path));
        var info = JsonDocument.Parse(await Tools.RunAsync("qemu-img", "info", "--output=json", image)).RootElement;
        Assert.False(info.TryGetProperty("backing-filename", out _));
        Assert.True(await QemuImg.CompareAsync(top, image, CancellationToken.None));
    }

    [Fact]
    public async Task A_failure_half_way_removes_every_file_the_restore_created()
    {
        var (_, _, plan, source) = await ChainAsync();
        source.FailOn = "vda.1";
        var target = RestoreDirectory.Prepare(Path.Combine(_dir, "fail"), DiskRestorer.OutputNames(plan, false), create: true);

        await Assert.ThrowsAsync<IOException>(() => new DiskRestorer(source).RestoreToDirectoryAsync("p1", plan, target, false, null, CancellationToken.None));

        Assert.Empty(Directory.GetFileSystemEntries(target.Path));
    }

    [Fact]
    public async Task In_place_puts_the_backed_up_images_back_and_removes_the_replaced_ones()
    {
        var (top, basePath, plan, _) = await ChainAsync();
        var saved = Directory.CreateDirectory(Path.Combine(_dir, "saved")).FullName;
        File.Copy(top, Path.Combine(saved, "top"));
        File.Copy(basePath, Path.Combine(saved, "base"));
        var source = new CopySource(new Dictionary<string, string> { ["vda.0"] = Path.Combine(saved, "top"), ["vda.1"] = Path.Combine(saved, "base") });
        await Tools.RunAsync("qemu-io", "-f", "qcow2", "-c", "write -P 0x99 0 2M", top); // changes after the "backup"
        Assert.False(await QemuImg.CompareAsync(top, Path.Combine(saved, "top"), CancellationToken.None));

        var result = await new InPlaceRestorer(source).RestoreAsync("p1", plan, keepOld: false, null, CancellationToken.None);

        Assert.Equal([top, basePath], result.Select(r => r.Path));
        Assert.True(await QemuImg.CompareAsync(top, Path.Combine(saved, "top"), CancellationToken.None));
        Assert.Equal(["base.qcow2", "top.qcow2"], Directory.GetFiles(Path.GetDirectoryName(top)!).Select(Path.GetFileName).Order());
    }

    [Fact]
    public async Task In_place_that_fails_while_staging_leaves_the_current_images_untouched()
    {
        var (top, basePath, plan, source) = await ChainAsync();
        await Tools.RunAsync("qemu-io", "-f", "qcow2", "-c", "write -P 0x77 0 1M", top);
        var before = await File.ReadAllBytesAsync(top);
        source.FailOn = "vda.1";

        await Assert.ThrowsAsync<IOException>(() => new InPlaceRestorer(source).RestoreAsync("p1", plan, false, null, CancellationToken.None));

        Assert.Equal(before, await File.ReadAllBytesAsync(top));
        Assert.Equal(["base.qcow2", "top.qcow2"], Directory.GetFiles(Path.GetDirectoryName(basePath)!).Select(Path.GetFileName).Order());
    }

    /// <summary>Bitmap names in an image, as qemu-img reads the file.</summary>
    private static async Task<IReadOnlyList<string>> BitmapsAsync(string image) =>
        Backupd.Storage.ChangedBlocks.BitmapCheck.Names(await Tools.RunAsync("qemu-img", "info", "--output=json", image));

    [Fact]
    public async Task Restored_files_lose_the_dirty_bitmaps_the_backed_up_images_carried_and_still_read_like_them()
    {
        var (top, basePath, plan, source) = await ChainAsync();
        await Tools.RunAsync("qemu-img", "bitmap", "--add", "-g", "64K", top, "backupd-run1");
        await Tools.RunAsync("qemu-img", "bitmap", "--add", "-g", "64K", top, "foreign");
        await Tools.RunAsync("qemu-img", "bitmap", "--add", "-g", "64K", basePath, "backupd-run0");
        Assert.Equal(["backupd-run1", "foreign"], (await BitmapsAsync(top)).Order());
        var target = RestoreDirectory.Prepare(Path.Combine(_dir, "bm"), DiskRestorer.OutputNames(plan, false), create: true);

        var result = Assert.Single(await new DiskRestorer(source).RestoreToDirectoryAsync("p1", plan, target, flatten: false, null, CancellationToken.None));

        Assert.Empty(await BitmapsAsync(result.Files[0]));
        Assert.Empty(await BitmapsAsync(result.Files[1]));
        Assert.Equal(3, result.RemovedBitmaps.Count);
        Assert.True(await QemuImg.CompareAsync(top, result.ImagePath, CancellationToken.None));
        Assert.Equal(2, (await BitmapsAsync(top)).Count); // the source is not touched
    }

    [Fact]
    public async Task In_place_restored_files_lose_their_dirty_bitmaps()
    {
        var (top, basePath, plan, _) = await ChainAsync();
        var saved = Directory.CreateDirectory(Path.Combine(_dir, "saved-bm")).FullName;
        await Tools.RunAsync("qemu-img", "bitmap", "--add", "-g", "64K", top, "backupd-run1");
        File.Copy(top, Path.Combine(saved, "top"));
        File.Copy(basePath, Path.Combine(saved, "base"));
        var source = new CopySource(new Dictionary<string, string> { ["vda.0"] = Path.Combine(saved, "top"), ["vda.1"] = Path.Combine(saved, "base") });

        var result = await new InPlaceRestorer(source).RestoreAsync("p1", plan, keepOld: false, null, CancellationToken.None);

        Assert.Empty(await BitmapsAsync(top));
        Assert.Equal(["backupd-run1"], result[0].RemovedBitmaps);
        Assert.Empty(result[1].RemovedBitmaps);
        Assert.True(await QemuImg.CompareAsync(top, Path.Combine(saved, "top"), CancellationToken.None));
    }

    private sealed class SyncProgress(Action<long> action) : IProgress<long>
    {
        public void Report(long value) => action(value);
    }

    /// <summary>Stands in for the repository: copies the original files, refusing an existing target like the repository does.</summary>
    private sealed class CopySource(Dictionary<string, string> files) : IRestoreSource
    {
        public string? FailOn { get; set; }

        public async Task RestoreFileAsync(string pointId, string fileKey, string targetPath, IProgress<long>? progress, CancellationToken ct)
        {
            await using var input = File.OpenRead(files[fileKey]);
            await using var output = new FileStream(targetPath, FileMode.CreateNew);
            if (fileKey == FailOn) throw new IOException($"simulated read error in {fileKey}");
            await input.CopyToAsync(output, ct);
            progress?.Report(output.Length);
        }

        public async Task<bool> MatchesAsync(string pointId, string fileKey, string path, CancellationToken ct)
        {
            var expected = await File.ReadAllBytesAsync(files[fileKey], ct);
            var actual = await File.ReadAllBytesAsync(path, ct);
            return expected.AsSpan().SequenceEqual(actual);
        }
    }
}
