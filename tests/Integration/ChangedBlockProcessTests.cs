using System.Text.Json;
using Backupd.Daemon.ChangedBlocks;
using Backupd.Daemon.Libvirt;
using Backupd.Daemon.Workflow;
using Backupd.Integration.Fixtures;
using Backupd.Storage.Repository;
using static Backupd.Integration.Fixtures.Eventually;

namespace Backupd.Integration;

/// <summary>
/// Changed-block tracking end to end with the real executable and catalog (issue 12): kill -9 of backupd at each checkpoint
/// step then `recover`; kill -9 of QEMU; a checkpoint deleted behind our back; `backup --full` (the safety net). After each, the
/// next backup is checked against the guest's image (restored from the repository and compared with qemu-img).
/// </summary>
[Trait("Category", "Integration")]
public sealed class ChangedBlockProcessTests(PostgresDatabase database) : CatalogProcessTestBase(database)
{
    private static Dictionary<string, string> KillAt(string step) => new() { [Faults.EnvironmentVariable] = $"{step}:kill" };

    private async Task<JsonElement> BackupAsync(TestVm vm, params string[] extra)
    {
        var run = await Backupd(["backup", "--domain", vm.Name, "--to", Repository, "--quiesce", "off", "--json", .. extra]);
        Assert.True(run.ExitCode == 0, $"backup exited {run.ExitCode}: {run.Stdout} {run.Stderr}");
        return JsonDocument.Parse(run.Stdout).RootElement.Clone();
    }

    private static JsonElement Disk(JsonElement result, string target) =>
        result.GetProperty("disks").EnumerateArray().Single(d => d.GetProperty("target").GetString() == target);

    private static string? ReasonOf(JsonElement disk) => disk.TryGetProperty("fullReadReason", out var r) && r.ValueKind == JsonValueKind.String ? r.GetString() : null;

    private static IReadOnlyList<string> OurCheckpoints(TestVm vm)
    {
        using var hypervisor = LibvirtHypervisor.Open("qemu:///system");
        return [.. hypervisor.ListCheckpoints(vm.Uuid).Select(c => c.Name).Where(CheckpointSteps.IsOurs)];
    }

    /// <summary>qemu-nbd processes serving any file of the VM's directory (a journaled export recovery must have stopped).</summary>
    private static IReadOnlyList<int> QemuNbdOn(TestVm vm) =>
        [.. Directory.EnumerateDirectories("/proc").Select(d => int.TryParse(Path.GetFileName(d), out var pid) ? pid : 0).Where(pid => pid > 0 && IsNbdOn(pid, vm.Directory))];

    private static bool IsNbdOn(int pid, string directory)
    {
        try { return QemuNbdExport.IsQemuNbd(pid) && File.ReadAllText($"/proc/{pid}/cmdline").Contains(directory, StringComparison.Ordinal); }
        catch (IOException) { return false; }
        catch (UnauthorizedAccessException) { return false; }
    }

    /// <summary>The domain is stopped cleanly (no write after the last backup's snapshot), so its point must equal the image.</summary>
    private async Task AssertPointIsTheImageAsync(TestVm vm, JsonElement result)
    {
        if (await vm.StateAsync() != "shut off") await vm.DestroyAsync();
        var copy = Path.Combine(Config.Directory, $"restored-{Guid.NewGuid():N}.qcow2");
        using (var repository = BackupRepository.Open(Repository))
            await repository.RestoreFileAsync(result.GetProperty("restorePointId").GetString()!, "vda.0", copy, null, CancellationToken.None);
        Assert.True(await Daemon.Images.QemuImg.CompareAsync(copy, vm.Disk("vda").Path, CancellationToken.None),
            $"point {result.GetProperty("restorePointId").GetString()} is not the guest's image");
    }

    [Theory]
    [InlineData(Faults.AfterCheckpoint)]
    [InlineData(Faults.MidMap)]
    [InlineData(Faults.BeforeRotation)]
    public async Task Killed_at_a_checkpoint_step_recover_leaves_the_vm_on_its_base_no_qemu_nbd_and_the_next_backup_is_correct(string step)
    {
        await using var vm = await TestVm.CreateAsync(new DiskSpec("vda", FillPattern: 0x11));
        await vm.StartAsync();
        var first = await BackupAsync(vm);
        await vm.WriteAsGuestAsync("vda", 4 * MiB, 0x22, MiB);

        var killed = await Backupd(KillAt(step), "backup", "--domain", vm.Name, "--to", Repository, "--quiesce", "off", "--json");
        Assert.Equal(137, killed.ExitCode); // SIGKILL
        if (step == Faults.MidMap) Assert.NotEmpty(QemuNbdOn(vm)); // the export outlived the process that started it
        await vm.WriteAsGuestAsync("vda", 6 * MiB, 0x33, MiB); // while nobody runs: into the overlay, or the base

        var recover = await Backupd("recover", "--domain", vm.Name, "--json");
        Assert.True(recover.ExitCode == 0, $"recover exited {recover.ExitCode}: {recover.Stdout} {recover.Stderr}");
        Assert.Equal(vm.Disk("vda").Path, await vm.ActiveSourceAsync("vda"));
        Assert.DoesNotContain(Directory.EnumerateFiles(vm.Directory), OverlayNaming.IsOverlay);
        await WaitUntilAsync(() => QemuNbdOn(vm).Count == 0, TimeSpan.FromSeconds(10), "no qemu-nbd left on the VM's images", []);
        // Only the last good checkpoint is left: the first backup's, or, when the killed run's point was already durable, its own.
        Assert.Single(OurCheckpoints(vm));
        Assert.True(await vm.GuestReadMatchesAsync("vda", 6 * MiB, MiB, 0x33), "the write made while backupd was dead is lost");

        await vm.WriteAsGuestAsync("vda", 9 * MiB, 0x44, MiB);
        var next = await BackupAsync(vm);

        Assert.Equal("incremental", Disk(next, "vda").GetProperty("readMode").GetString());
        Assert.Equal([CheckpointSteps.NameFor(next.GetProperty("runId").GetString()!)], OurCheckpoints(vm));
        Assert.NotEqual(first.GetProperty("restorePointId").GetString(), next.GetProperty("restorePointId").GetString());
        await AssertPointIsTheImageAsync(vm, next);
    }

    [Fact]
    public async Task After_qemu_is_killed_the_next_backup_reads_in_full_with_the_reason_and_is_correct()
    {
        await using var vm = await TestVm.CreateAsync(new DiskSpec("vda", FillPattern: 0x11));
        await vm.StartAsync();
        await BackupAsync(vm);
        await vm.WriteAsGuestAsync("vda", 4 * MiB, 0x22, MiB);
        var pid = int.Parse((await File.ReadAllTextAsync($"/run/libvirt/qemu/{vm.Name}.pid")).Trim(), System.Globalization.CultureInfo.InvariantCulture);

        await Tools.RunAsync("kill", "-9", pid.ToString(System.Globalization.CultureInfo.InvariantCulture));
        for (var i = 0; i < 60 && await vm.StateAsync() != "shut off"; i++) await Task.Delay(500);
        Assert.Equal("shut off", await vm.StateAsync()); // libvirt noticed QEMU's death
        await vm.StartAsync();
        await vm.WriteAsGuestAsync("vda", 6 * MiB, 0x33, MiB);

        var next = await BackupAsync(vm);

        var disk = Disk(next, "vda");
        Assert.Equal("full", disk.GetProperty("readMode").GetString());
        Assert.False(string.IsNullOrEmpty(ReasonOf(disk)), "a full read says why");
        Assert.Contains("bitmap", ReasonOf(disk)!, StringComparison.Ordinal);
        await vm.WriteAsGuestAsync("vda", 9 * MiB, 0x44, MiB);
        var after = await BackupAsync(vm);
        Assert.Equal("incremental", Disk(after, "vda").GetProperty("readMode").GetString());
        await AssertPointIsTheImageAsync(vm, after);
    }

    [Fact]
    public async Task A_checkpoint_deleted_behind_our_back_gives_a_full_read_with_the_reason()
    {
        await using var vm = await TestVm.CreateAsync(new DiskSpec("vda", FillPattern: 0x11));
        await vm.StartAsync();
        var first = await BackupAsync(vm);
        var name = CheckpointSteps.NameFor(first.GetProperty("runId").GetString()!);
        await Tools.Virsh("checkpoint-delete", vm.Name, name, "--metadata");
        await vm.WriteAsGuestAsync("vda", 4 * MiB, 0x22, MiB);

        var next = await BackupAsync(vm);

        var disk = Disk(next, "vda");
        Assert.Equal("full", disk.GetProperty("readMode").GetString());
        Assert.Equal($"checkpoint {name} of the previous point no longer exists", ReasonOf(disk));
        await AssertPointIsTheImageAsync(vm, next);
    }

    [Fact]
    public async Task Backup_full_is_a_safety_net_read_that_counts_zero_missed_blocks_and_show_reports_it()
    {
        await using var vm = await TestVm.CreateAsync(new DiskSpec("vda", FillPattern: 0x11));
        await vm.StartAsync();
        await BackupAsync(vm);
        await vm.WriteAsGuestAsync("vda", 4 * MiB, 0x22, MiB);
        var incremental = await BackupAsync(vm);
        Assert.Equal("incremental", Disk(incremental, "vda").GetProperty("readMode").GetString());
        await vm.WriteAsGuestAsync("vda", 6 * MiB, 0x33, MiB);

        var full = await BackupAsync(vm, "--full");

        var disk = Disk(full, "vda");
        Assert.Equal("safety-net", disk.GetProperty("readMode").GetString());
        Assert.Equal(0, disk.GetProperty("cleanButChanged").GetInt64());
        var pointId = full.GetProperty("restorePointId").GetString()!;
        var show = await Backupd("show", pointId, "--json");
        Assert.True(show.ExitCode == 0, show.Stderr);
        var file = JsonDocument.Parse(show.Stdout).RootElement.GetProperty("files").EnumerateArray().Single(f => f.GetProperty("fileKey").GetString() == "vda.0");
        Assert.Equal("safety-net", file.GetProperty("readMode").GetString());
        Assert.Equal(0, file.GetProperty("cleanButChanged").GetInt64());
        var previous = JsonDocument.Parse((await Backupd("show", incremental.GetProperty("restorePointId").GetString()!, "--json")).Stdout).RootElement
            .GetProperty("files").EnumerateArray().Single(f => f.GetProperty("fileKey").GetString() == "vda.0");
        Assert.Equal("incremental", previous.GetProperty("readMode").GetString());
        var human = await Backupd("show", pointId);
        Assert.Contains("vda.0: safety-net, read", human.Stdout, StringComparison.Ordinal);
        var verify = await Backupd("verify", "--point", pointId, "--json");
        Assert.True(verify.ExitCode == 0, $"verify: {verify.Stdout} {verify.Stderr}");
        await AssertPointIsTheImageAsync(vm, full);
    }
}
