using System.Text.Json;
using System.Xml.Linq;
using Backupd.Daemon.Libvirt;
using Backupd.Daemon.Restore;
using Backupd.Daemon.Workflow;
using Backupd.Integration.Fixtures;
using Backupd.Policies.Model;
using Backupd.Storage.Catalog;
using Backupd.Storage.Repository;
using Microsoft.Extensions.Logging.Abstractions;

namespace Backupd.Integration;

/// <summary>
/// Disks on real block devices (a loop device, an LVM logical volume on a loop device): the defect was a block
/// device stored as 0 bytes (its inode size) with the run reporting success. Every copy here is compared byte for
/// byte with the device content at snapshot time.
/// </summary>
[Trait("Category", "Integration")]
public sealed class BlockDeviceBackupTests : IDisposable
{
    private const long MiB = TestVm.MiB;
    private readonly string work = Directory.CreateTempSubdirectory("bkd-block-").FullName;
    // The overlay of a block disk goes into STATE/overlays, which QEMU (user libvirt-qemu) must reach: a 0700
    // temporary directory would not do, a directory beside the test images (as /var/lib/backupd is) does.
    private readonly string state = Path.Combine(TestVm.ImageRoot, $"state-{Guid.NewGuid():N}");
    private string Repository => Path.Combine(work, "repo");
    private WorkflowOptions Options => new() { StateDirectory = state, MinimumOverlayFreeBytes = 64 * MiB };

    public void Dispose()
    {
        Directory.Delete(work, recursive: true);
        if (Directory.Exists(state)) Directory.Delete(state, recursive: true);
    }

    private async Task<BackupResult> BackupAsync(TestVm vm, IBackupTarget target)
    {
        using var hypervisor = LibvirtHypervisor.Open("qemu:///system");
        return await new BackupWorkflow(hypervisor, new Daemon.Images.QemuImg(), target, Options, NullLogger.Instance)
            .RunAsync(new BackupRequest(vm.Name, [], [], QuiesceMode.Off), CancellationToken.None);
    }

    private async Task<string> RestoredAsync(string pointId, string fileKey)
    {
        var path = Path.Combine(work, $"restored-{fileKey}");
        using var repository = BackupRepository.Open(Repository);
        await repository.RestoreFileAsync(pointId, fileKey, path, null, CancellationToken.None);
        return path;
    }

    /// <summary>cmp exits 0 for identical content; its output names the first difference.</summary>
    private static async Task AssertSameBytesAsync(string expected, string actual)
    {
        var (code, stdout, stderr) = await Tools.TryRunAsync("cmp", expected, actual);
        Assert.True(code == 0, $"{actual} differs from {expected}: {stdout}{stderr}");
    }

    /// <summary>A persistent VM with a file vda plus vdb on <paramref name="device"/> as &lt;disk type='block'&gt; with the given driver type.</summary>
    private static async Task<TestVm> VmWithBlockDiskAsync(string device, string format)
    {
        var vm = await TestVm.CreateAsync(new DiskSpec("vda", FillPattern: 0x01));
        try
        {
            await Tools.Virsh("attach-disk", vm.Name, device, "vdb", "--sourcetype", "block", "--driver", "qemu", "--subdriver", format, "--targetbus", "virtio", "--config");
            var disk = XDocument.Parse(await vm.InactiveXmlAsync()).Descendants("disk").Single(d => (string?)d.Element("target")?.Attribute("dev") == "vdb");
            Assert.Equal("block", (string?)disk.Attribute("type"));
            Assert.Equal(device, (string?)disk.Element("source")?.Attribute("dev"));
            return vm;
        }
        catch
        {
            await vm.DisposeAsync();
            throw;
        }
    }

    private static string ModeOf(string path) => OperatingSystem.IsWindows() ? "" : Convert.ToString((int)File.GetUnixFileMode(path), 8);

    private static async Task<string?> LiveSourceDevAsync(TestVm vm, string target) =>
        XDocument.Parse(await vm.LiveXmlAsync()).Descendants("disk").Single(d => (string?)d.Element("target")?.Attribute("dev") == target)
            .Element("source")?.Attribute("dev")?.Value;

    [Fact]
    public async Task Backup_file_of_a_64_MiB_loop_device_stores_all_of_it_and_restores_identical()
    {
        await using var loop = await LoopDevice.CreateAsync(64 * MiB);
        await TestVm.WritePatternAsync(loop.Path, "raw", 0, MiB, 0x3c);
        await TestVm.WritePatternAsync(loop.Path, "raw", 63 * MiB, MiB, 0xc3); // the last MiB: a short copy loses it

        var backup = await BackupdProcess.RunAsync("backup", "--file", loop.Path, "--to", Repository, "--json");

        Assert.True(backup.ExitCode == 0, backup.Stderr);
        var json = JsonDocument.Parse(backup.Stdout).RootElement;
        Assert.Equal(64 * MiB, json.GetProperty("fileSize").GetInt64());
        Assert.True(json.GetProperty("bytesRead").GetInt64() > 0, backup.Stdout);
        var restored = Path.Combine(work, "loop.img");
        var restore = await BackupdProcess.RunAsync("restore", "--repository", Repository, "--file", json.GetProperty("file").GetString()!, "--to", restored, "--json");
        Assert.True(restore.ExitCode == 0, restore.Stderr);
        Assert.Equal(64 * MiB, new FileInfo(restored).Length);
        await AssertSameBytesAsync(loop.Path, restored);
    }

    [Fact]
    public async Task Live_backup_of_an_LVM_logical_volume_while_the_guest_writes_restores_byte_identical()
    {
        await using var lv = await LogicalVolume.CreateAsync(64 * MiB);
        await TestVm.WritePatternAsync(lv.Path, "raw", 0, 2 * MiB, 0x11);
        await TestVm.WritePatternAsync(lv.Path, "raw", 62 * MiB, 2 * MiB, 0x22);
        await using var vm = await VmWithBlockDiskAsync(lv.Path, "raw");
        await vm.StartAsync();
        var atSnapshot = Path.Combine(work, "lv-at-snapshot.img");
        string? overlay = null;
        var hooked = new HookedTarget(BackupTargets.Open(Repository))
        {
            BeforeFirstFile = async () =>
            {
                // After the snapshot the LV is frozen: this copy is what the backup must hold.
                File.Copy(lv.Path, atSnapshot);
                overlay = (await vm.ActiveSourceAsync("vdb"))!;
                await vm.WriteAsGuestAsync("vdb", 0, 0xab, MiB);
            },
            DuringCopy = () => vm.WriteAsGuestAsync("vdb", 30 * MiB, 0xcd, MiB),
        };

        var result = await BackupAsync(vm, hooked);

        Assert.True(result.Outcome == RunOutcome.Succeeded, result.Error);
        Assert.True(hooked.SawDuringCopy, "the guest must have written while the copy ran");
        // The overlay of a block disk is a file in the state directory, never in /dev.
        Assert.Equal(Path.Combine(Options.StateDirectory, "overlays"), Path.GetDirectoryName(overlay));
        Assert.Equal("711", ModeOf(Path.GetDirectoryName(overlay)!)); // QEMU can open it under any umask
        Assert.Equal(result.RunId, OverlayNaming.RunIdOf(overlay));
        Assert.False(File.Exists(overlay), "the overlay is deleted after the pivot");
        Assert.Equal(lv.Path, await LiveSourceDevAsync(vm, "vdb"));
        var vdb = result.Disks.Single(d => d.Target == "vdb").Files.Single();
        Assert.Equal(lv.Path, vdb.SourcePath);
        Assert.Equal(64 * MiB, vdb.BytesRead); // a device reports no holes: all of it is read
        var restored = await RestoredAsync(result.RestorePointId!, "vdb.0");
        Assert.Equal(64 * MiB, new FileInfo(restored).Length);
        await AssertSameBytesAsync(atSnapshot, restored);
        Assert.True(await TestVm.ImageMatchesAsync(restored, "raw", 62 * MiB, 2 * MiB, 0x22));

        // The guest's writes made during the backup are on the LV once QEMU is gone.
        await vm.DestroyAsync();
        Assert.True(await TestVm.ImageMatchesAsync(lv.Path, "raw", 0, MiB, 0xab));
        Assert.True(await TestVm.ImageMatchesAsync(lv.Path, "raw", 30 * MiB, MiB, 0xcd));
    }

    [Fact]
    public async Task Qcow2_on_a_logical_volume_is_backed_up_live_and_restores_byte_identical()
    {
        await using var lv = await LogicalVolume.CreateAsync(64 * MiB);
        await Tools.RunAsync("qemu-img", "create", "-q", "-f", "qcow2", lv.Path, "48M");
        await TestVm.WritePatternAsync(lv.Path, "qcow2", 0, 4 * MiB, 0x44);
        await using var vm = await VmWithBlockDiskAsync(lv.Path, "qcow2");
        await vm.StartAsync();
        var atSnapshot = Path.Combine(work, "lv-at-snapshot.qcow2");
        var hooked = new HookedTarget(BackupTargets.Open(Repository))
        {
            BeforeFirstFile = async () =>
            {
                File.Copy(lv.Path, atSnapshot);
                await vm.WriteAsGuestAsync("vdb", 0, 0x55, MiB);
            },
            DuringCopy = () => vm.WriteAsGuestAsync("vdb", 40 * MiB, 0x66, MiB),
        };

        var result = await BackupAsync(vm, hooked);

        Assert.True(result.Outcome == RunOutcome.Succeeded, result.Error);
        Assert.Equal(lv.Path, await LiveSourceDevAsync(vm, "vdb"));
        var restored = await RestoredAsync(result.RestorePointId!, "vdb.0");
        Assert.Equal(64 * MiB, new FileInfo(restored).Length); // the whole device, qcow2 inside
        await AssertSameBytesAsync(atSnapshot, restored);
        await Tools.RunAsync("qemu-img", "check", "-q", "-f", "qcow2", restored);
        Assert.True(await TestVm.ImageMatchesAsync(restored, "qcow2", 0, 4 * MiB, 0x44));
        await vm.DestroyAsync();
        Assert.True(await TestVm.ImageMatchesAsync(lv.Path, "qcow2", 0, MiB, 0x55));
        Assert.True(await TestVm.ImageMatchesAsync(lv.Path, "qcow2", 40 * MiB, MiB, 0x66));
    }

    [Fact]
    public async Task Our_virDomainGetBlockInfo_binding_reports_what_virsh_domblkinfo_does_for_a_block_disk()
    {
        await using var loop = await LoopDevice.CreateAsync(48 * MiB);
        await using var vm = await VmWithBlockDiskAsync(loop.Path, "raw");
        using var hypervisor = LibvirtHypervisor.Open("qemu:///system");

        var sizes = hypervisor.GetBlockSizes(vm.Uuid, "vdb");

        var virsh = (await Tools.Virsh("domblkinfo", vm.Name, "vdb")).Split('\n', StringSplitOptions.RemoveEmptyEntries)
            .Select(l => l.Split(':', 2)).ToDictionary(p => p[0].Trim(), p => ulong.Parse(p[1].Trim(), System.Globalization.CultureInfo.InvariantCulture));
        Assert.Equal(new BlockSizes(virsh["Capacity"], virsh["Allocation"], virsh["Physical"]), sizes);
        Assert.Equal((ulong)(48 * MiB), sizes.Capacity);
        Assert.Equal((ulong)(48 * MiB), sizes.Physical);
    }

    [Fact]
    public async Task In_place_restore_writes_the_staged_verified_image_onto_the_device_of_a_shut_off_domain()
    {
        await using var loop = await LoopDevice.CreateAsync(32 * MiB);
        await TestVm.WritePatternAsync(loop.Path, "raw", 0, 3 * MiB, 0x77);
        await using var vm = await VmWithBlockDiskAsync(loop.Path, "raw");
        var backedUp = Path.Combine(work, "backed-up.img");
        File.Copy(loop.Path, backedUp);
        BackupResult result;
        using (var target = BackupTargets.Open(Repository)) result = await BackupAsync(vm, target); // shut off: copied as it rests
        Assert.True(result.Outcome == RunOutcome.Succeeded, result.Error);
        await TestVm.WritePatternAsync(loop.Path, "raw", MiB, 8 * MiB, 0x99); // changes after the backup
        var plan = PlanOf(result.RestorePointId!, "vdb");
        var staging = Directory.CreateDirectory(Path.Combine(work, "staging")).FullName;
        using var repository = BackupRepository.Open(Repository);
        using var hypervisor = LibvirtHypervisor.Open("qemu:///system");
        var restore = new DomainRestore(new RepositoryRestoreSource(repository));

        // A device of another size is refused before anything is written.
        await loop.ResizeAsync(40 * MiB);
        var refused = await Assert.ThrowsAsync<RestoreException>(() =>
            restore.InPlaceAsync(hypervisor, Guid.Parse(vm.Uuid), result.RestorePointId!, plan, keepOld: false, null, CancellationToken.None, staging));
        Assert.Contains($"has {40 * MiB} bytes but vdb.0 of the restore point has {32 * MiB}", refused.Message, StringComparison.Ordinal);
        Assert.True(await TestVm.ImageMatchesAsync(loop.Path, "raw", MiB, 8 * MiB, 0x99));
        await loop.ResizeAsync(32 * MiB);

        var outcome = await restore.InPlaceAsync(hypervisor, Guid.Parse(vm.Uuid), result.RestorePointId!, plan, keepOld: true, null, CancellationToken.None, staging);

        await AssertSameBytesAsync(backedUp, loop.Path);
        var kept = Assert.Single(outcome.InPlace!).KeptAside!;
        Assert.Equal(staging, Path.GetDirectoryName(kept));
        Assert.True(await TestVm.ImageMatchesAsync(kept, "raw", MiB, 8 * MiB, 0x99), "--keep-old keeps the device's replaced content");
        Assert.Equal([kept], Directory.GetFiles(staging)); // the staged image is gone
        Assert.True(new FileInfo(loop.Path).Attributes != FileAttributes.Directory && File.Exists(loop.Path), "the device node is still there");
        Assert.Equal("block", (string?)XDocument.Parse(await vm.InactiveXmlAsync()).Descendants("disk")
            .Single(d => (string?)d.Element("target")?.Attribute("dev") == "vdb").Attribute("type"));
    }

    [Fact]
    public async Task Restore_in_place_through_the_catalog_puts_the_point_back_onto_the_logical_volume()
    {
        var database = new PostgresDatabase();
        await database.InitializeAsync();
        try
        {
            using var config = new TempConfig(database.ConnectionString);
            await using var lv = await LogicalVolume.CreateAsync(32 * MiB);
            await TestVm.WritePatternAsync(lv.Path, "raw", 0, 4 * MiB, 0x5b);
            await TestVm.WritePatternAsync(lv.Path, "raw", 31 * MiB, MiB, 0xb5);
            await using var vm = await VmWithBlockDiskAsync(lv.Path, "raw");
            var backedUp = Path.Combine(work, "lv-backed-up.img");
            File.Copy(lv.Path, backedUp);
            var backup = await BackupdProcess.RunAsync("--config", config.Path, "backup", "--domain", vm.Name, "--to", Repository, "--json");
            Assert.True(backup.ExitCode == 0, backup.Stderr);
            await TestVm.WritePatternAsync(lv.Path, "raw", 2 * MiB, 20 * MiB, 0xee); // damage after the backup

            var restore = await BackupdProcess.RunAsync("--config", config.Path, "restore", "--domain", vm.Name, "--in-place", "--force", "--json");

            Assert.True(restore.ExitCode == 0, restore.Stderr);
            await AssertSameBytesAsync(backedUp, lv.Path);
            var staging = Path.Combine(config.StateDirectory, "restore-staging");
            Assert.True(Directory.Exists(staging), "the default staging directory is the state directory's");
            Assert.Empty(Directory.GetFileSystemEntries(staging));
            Assert.Equal(lv.Path, (string?)XDocument.Parse(await vm.InactiveXmlAsync()).Descendants("disk")
                .Single(d => (string?)d.Element("target")?.Attribute("dev") == "vdb").Element("source")?.Attribute("dev"));
        }
        finally
        {
            await database.DisposeAsync();
        }
    }

    /// <summary>The restore plan for one disk, from the point's manifest (the catalog holds the same rows).</summary>
    private IReadOnlyList<PlannedDisk> PlanOf(string pointId, string disk) => RepositoryPlans.Of(Repository, pointId, disk);
}
