using System.Text.Json;
using Backupd.Daemon.Images;
using Backupd.Daemon.Libvirt;
using Backupd.Daemon.Workflow;
using Backupd.Integration.Fixtures;
using Backupd.Policies.Model;
using Backupd.Storage.Catalog;
using Microsoft.Extensions.Logging.Abstractions;

namespace Backupd.Integration;

/// <summary>
/// The checkpoint steps of the workflow (issue 12) against real libvirtd + QEMU: NEW before the snapshot, its bitmap in the base
/// after the pivot, rotation, raw and qcow2 v2 disks listed checkpoint='no', shut-off domains with checkpoints.
/// </summary>
[Trait("Category", "Integration")]
public sealed class CheckpointLifecycleTests(Xunit.Abstractions.ITestOutputHelper output) : IDisposable
{
    private const long MiB = TestVm.MiB;
    private readonly string work = Directory.CreateTempSubdirectory("bkd-cpl-").FullName;
    private string Repository => Path.Combine(work, "repo");
    private WorkflowOptions Options => new() { StateDirectory = Path.Combine(work, "state"), MinimumOverlayFreeBytes = 64 * MiB, ChangedBlockTracking = true };

    public void Dispose() => Directory.Delete(work, recursive: true);

    private async Task<BackupResult> BackupAsync(TestVm vm, IBackupTarget? target = null, ReadRequest? read = null)
    {
        using var hypervisor = LibvirtHypervisor.Open("qemu:///system");
        using var repository = target is null ? BackupTargets.Open(Repository) : null;
        var workflow = new BackupWorkflow(hypervisor, new QemuImg(), target ?? repository!, Options, NullLogger.Instance) { Planner = new LibnbdPlanner() };
        return await workflow.RunAsync(new BackupRequest(vm.Name, [], [], QuiesceMode.Off) { Read = read ?? new() }, CancellationToken.None);
    }

    private static IReadOnlyList<CheckpointInfo> Checkpoints(TestVm vm)
    {
        using var hypervisor = LibvirtHypervisor.Open("qemu:///system");
        return hypervisor.ListCheckpoints(vm.Uuid);
    }

    /// <summary>Bitmap names and flags in the image, as qemu-img reads the file (-U: the VM may be running).</summary>
    private static async Task<Dictionary<string, string[]>> BitmapsAsync(string image)
    {
        using var doc = JsonDocument.Parse(await QemuImg.ImageJsonAsync(image, CancellationToken.None));
        var result = new Dictionary<string, string[]>();
        if (!doc.RootElement.TryGetProperty("format-specific", out var specific) || !specific.GetProperty("data").TryGetProperty("bitmaps", out var bitmaps)) return result;
        foreach (var b in bitmaps.EnumerateArray())
            result[b.GetProperty("name").GetString()!] = [.. b.GetProperty("flags").EnumerateArray().Select(f => f.GetString()!)];
        return result;
    }

    private ChangedBlockMetadata RecordOf(BackupResult result)
    {
        using var repository = Storage.Repository.BackupRepository.Open(Repository);
        return ChangedBlockMetadata.Of(repository.FindPoint(result.RestorePointId!)!.Metadata) ?? throw new InvalidOperationException("no changed-blocks record");
    }

    [Fact]
    public async Task Three_backups_each_keep_exactly_their_own_checkpoint_whose_bitmap_is_in_the_base_and_every_point_restores_its_moment()
    {
        await using var vm = await TestVm.CreateAsync(new DiskSpec("vda", FillPattern: 0x11));
        await vm.StartAsync();
        var expected = new List<(BackupResult Result, long Offset, byte Pattern)>();
        for (var i = 0; i < 3; i++)
        {
            var offset = (4 + 8 * i) * MiB;
            var pattern = (byte)(0x21 + i);
            await vm.WriteAsGuestAsync("vda", offset, pattern, MiB); // before the snapshot: in this point
            var hooked = new HookedTarget(BackupTargets.Open(Repository))
            {
                DuringCopy = () => vm.WriteAsGuestAsync("vda", offset + 2 * MiB, (byte)(pattern + 0x40), MiB), // after it: only in the next
            };

            var result = await BackupAsync(vm, hooked);

            Assert.Equal(RunOutcome.Succeeded, result.Outcome);
            Assert.True(hooked.SawDuringCopy);
            var name = CheckpointSteps.NameFor(result.RunId);
            Assert.Equal(name, result.Checkpoint);
            Assert.Equal([name], Checkpoints(vm).Where(c => CheckpointSteps.IsOurs(c.Name)).Select(c => c.Name));
            Assert.Equal(["vda"], Checkpoints(vm).Single().BitmapDisks);
            Assert.Equal(vm.Disk("vda").Path, await vm.ActiveSourceAsync("vda"));
            // The pivot merged the overlay's bitmap back: the base carries NEW (QEMU writes it to the file at the latest on close).
            Assert.Equal(name, RecordOf(result).Checkpoint);
            var disk = result.Disks.Single();
            var fileLength = new FileInfo(vm.Disk("vda").Path).Length;
            output.WriteLine($"backup {i + 1}: {disk.ReadMode}, read {disk.Files[0].BytesRead} of {fileLength} bytes, reason: {disk.FullReadReason ?? "-"}");
            if (i == 0) Assert.Equal("no earlier restore point with a checkpoint", disk.FullReadReason);
            else
            {
                Assert.True(disk.ReadMode == "incremental", $"backup {i + 1}: {disk.ReadMode}: {disk.FullReadReason}");
                // The disk is small (a few MiB allocated) and 2 MiB were written since the last point: less than the whole file, not a ratio.
                Assert.True(disk.Files[0].BytesRead < fileLength, $"an incremental read {disk.Files[0].BytesRead} of {fileLength} bytes");
            }
            expected.Add((result, offset, pattern));
        }

        await vm.DestroyAsync(); // a clean stop: QEMU stores the persistent bitmaps in the file
        var bitmaps = await BitmapsAsync(vm.Disk("vda").Path);
        Assert.Equal([CheckpointSteps.NameFor(expected[^1].Result.RunId)], bitmaps.Keys.Where(CheckpointSteps.IsOurs));
        Assert.Equal(["auto"], bitmaps.Values.Single());

        // Every point is the guest view of its moment: its own pre-snapshot write, no write made during its copy.
        foreach (var (result, offset, pattern) in expected)
        {
            var copy = Path.Combine(work, $"restored-{result.RestorePointId}");
            using (var repository = Storage.Repository.BackupRepository.Open(Repository))
                await repository.RestoreFileAsync(result.RestorePointId!, "vda.0", copy, null, CancellationToken.None);
            Assert.True(await TestVm.ImageMatchesAsync(copy, "qcow2", offset, MiB, pattern), $"point {result.RestorePointId} lacks its write");
            Assert.True(await TestVm.ImageMatchesAsync(copy, "qcow2", offset + 2 * MiB, MiB, 0x00), $"point {result.RestorePointId} has a write made during its copy");
        }
    }

    [Fact]
    public async Task Raw_and_qcow2_v2_disks_are_listed_checkpoint_no_and_read_in_full_with_a_reason()
    {
        await using var vm = await TestVm.CreateAsync(new DiskSpec("vda"), new DiskSpec("vdb", Format: "raw"), new DiskSpec("vdc", FillPattern: null));
        await Tools.RunAsync("qemu-img", "amend", "-f", "qcow2", "-o", "compat=0.10", vm.Disk("vdc").Path);
        await vm.StartAsync();

        var result = await BackupAsync(vm);

        Assert.Equal(RunOutcome.Succeeded, result.Outcome);
        Assert.Equal(["vda"], Checkpoints(vm).Single().BitmapDisks);
        Assert.StartsWith("raw image", result.Disks.Single(d => d.Target == "vdb").FullReadReason, StringComparison.Ordinal);
        Assert.StartsWith("qcow2 v2 image", result.Disks.Single(d => d.Target == "vdc").FullReadReason, StringComparison.Ordinal);
        var record = RecordOf(result);
        Assert.True(record.Disk("vda")!.Bitmap);
        Assert.False(record.Disk("vdb")!.Bitmap);
        Assert.False(record.Disk("vdc")!.Bitmap);
    }

    [Fact]
    public async Task A_shut_off_domain_with_a_checkpoint_is_still_backed_up_and_the_next_live_backup_rotates_it()
    {
        await using var vm = await TestVm.CreateAsync(new DiskSpec("vda"));
        await vm.StartAsync();
        var live = await BackupAsync(vm);
        await vm.DestroyAsync();

        var off = await BackupAsync(vm); // libvirt refuses disk-only snapshots and checkpoint changes here: neither is tried

        Assert.Equal(RunOutcome.Succeeded, off.Outcome);
        Assert.Equal(Consistency.ShutOff, off.Consistency);
        Assert.Equal(CheckpointSteps.NameFor(live.RunId), Assert.Single(Checkpoints(vm)).Name);
        Assert.Equal(CheckpointSteps.NameFor(live.RunId), RecordOf(off).Checkpoint);

        await vm.StartAsync();
        var again = await BackupAsync(vm);
        Assert.Equal(RunOutcome.Succeeded, again.Outcome);
        Assert.Equal(CheckpointSteps.NameFor(again.RunId), Assert.Single(Checkpoints(vm)).Name);
    }

    [Fact]
    public async Task An_in_place_restore_drops_the_checkpoints_and_bitmaps_then_the_next_backup_reads_in_full_and_the_one_after_is_incremental_and_correct()
    {
        await using var vm = await TestVm.CreateAsync(new DiskSpec("vda", FillPattern: 0x11));
        await vm.StartAsync();
        var first = await BackupAsync(vm);
        await vm.WriteAsGuestAsync("vda", 4 * MiB, 0x22, MiB);
        var second = await BackupAsync(vm);
        Assert.Equal("incremental", second.Disks.Single().ReadMode);
        await vm.DestroyAsync();
        Assert.NotEmpty(Checkpoints(vm));

        OutcomeOf restore;
        using (var repository = Storage.Repository.BackupRepository.Open(Repository))
        using (var hypervisor = LibvirtHypervisor.Open("qemu:///system"))
        {
            var outcome = await new Daemon.Restore.DomainRestore(new Daemon.Restore.RepositoryRestoreSource(repository)).InPlaceAsync(
                hypervisor, Guid.Parse(vm.Uuid), first.RestorePointId!, RepositoryPlans.Of(Repository, first.RestorePointId!, "vda"), keepOld: false, null, CancellationToken.None);
            restore = new(outcome.DroppedCheckpoints!, outcome.CheckpointProblem, outcome.InPlace!.Single().RemovedBitmaps);
        }

        // The restored file is point 1's copy, which carried the bitmaps of its moment: all gone, and so are the domain's checkpoints.
        Assert.Null(restore.Problem);
        Assert.Equal([CheckpointSteps.NameFor(second.RunId)], restore.Dropped);
        Assert.Contains(CheckpointSteps.NameFor(first.RunId), restore.RemovedBitmaps);
        Assert.Empty(Checkpoints(vm));
        Assert.Empty(await BitmapsAsync(vm.Disk("vda").Path));
        Assert.True(await TestVm.ImageMatchesAsync(vm.Disk("vda").Path, "qcow2", 4 * MiB, MiB, 0x00), "the restored image is point 1's");

        await vm.StartAsync();
        await vm.WriteAsGuestAsync("vda", 6 * MiB, 0x33, MiB);
        var third = await BackupAsync(vm);
        Assert.Equal(RunOutcome.Succeeded, third.Outcome);
        Assert.Equal("full", third.Disks.Single().ReadMode);
        Assert.Equal($"checkpoint {CheckpointSteps.NameFor(second.RunId)} of the previous point no longer exists", third.Disks.Single().FullReadReason);

        await vm.WriteAsGuestAsync("vda", 9 * MiB, 0x44, MiB);
        var fourth = await BackupAsync(vm);
        Assert.Equal(RunOutcome.Succeeded, fourth.Outcome);
        Assert.True(fourth.Disks.Single().ReadMode == "incremental", fourth.Disks.Single().FullReadReason);
        await vm.DestroyAsync();

        // Nothing was written after the fourth snapshot: its point is the image as it rests now.
        var copy = Path.Combine(work, "restored-fourth");
        using (var repository = Storage.Repository.BackupRepository.Open(Repository))
            await repository.RestoreFileAsync(fourth.RestorePointId!, "vda.0", copy, null, CancellationToken.None);
        Assert.True(await QemuImg.CompareAsync(copy, vm.Disk("vda").Path, CancellationToken.None), "the incremental after the restore is the guest's view");
        Assert.True(await TestVm.ImageMatchesAsync(copy, "qcow2", 4 * MiB, MiB, 0x00));
        Assert.True(await TestVm.ImageMatchesAsync(copy, "qcow2", 6 * MiB, MiB, 0x33));
        Assert.True(await TestVm.ImageMatchesAsync(copy, "qcow2", 9 * MiB, MiB, 0x44));
    }

    private sealed record OutcomeOf(IReadOnlyList<string> Dropped, string? Problem, IReadOnlyList<string> RemovedBitmaps);
}
