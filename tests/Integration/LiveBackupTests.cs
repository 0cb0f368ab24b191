using System.Security.Cryptography;
using Backupd.Daemon.Images;
using Backupd.Daemon.Libvirt;
using Backupd.Daemon.Workflow;
using Backupd.Integration.Fixtures;
using Backupd.Policies.Model;
using Microsoft.Extensions.Logging.Abstractions;

namespace Backupd.Integration;

/// <summary>The live backup workflow in-process against real libvirtd + QEMU + qemu-img.</summary>
[Trait("Category", "Integration")]
public sealed class LiveBackupTests : IDisposable
{
    private const long MiB = TestVm.MiB;
    private readonly string work = Directory.CreateTempSubdirectory("bkd-live-").FullName;
    private string Repository => Path.Combine(work, "repo");
    private WorkflowOptions Options => new() { StateDirectory = Path.Combine(work, "state"), MinimumOverlayFreeBytes = 64 * MiB };

    public void Dispose() => Directory.Delete(work, recursive: true);

    private async Task<BackupResult> BackupAsync(TestVm vm, IBackupTarget? target = null, QuiesceMode quiesce = QuiesceMode.Preferred)
    {
        await Requirements.LibvirtAndQemuAsync();
        using var hypervisor = LibvirtHypervisor.Open("qemu:///system");
        using var repository = target is null ? BackupTargets.Open(Repository) : null;
        var workflow = new BackupWorkflow(hypervisor, new QemuImg(), target ?? repository!, Options, NullLogger.Instance);
        return await workflow.RunAsync(new BackupRequest(vm.Name, [], [], quiesce), CancellationToken.None);
    }

    /// <summary>The stored copy of one chain file, restored from the repository (verified against its digest) into the work directory.</summary>
    private string CopyOf(BackupResult result, string fileKey)
    {
        var path = Path.Combine(work, $"restored-{result.RestorePointId}-{fileKey}");
        if (!File.Exists(path))
        {
            using var repository = Storage.Repository.BackupRepository.Open(Repository);
            repository.RestoreFileAsync(result.RestorePointId!, fileKey, path, null, CancellationToken.None).GetAwaiter().GetResult();
        }
        return path;
    }

    private static IEnumerable<string> OverlayFiles(TestVm vm) => Directory.EnumerateFiles(vm.Directory).Where(OverlayNaming.IsOverlay);

    private static string Sha256(string path)
    {
        using var stream = File.OpenRead(path);
        return Convert.ToHexString(SHA256.HashData(stream));
    }

    [Fact]
    public async Task Guest_writes_during_the_copy_land_in_the_base_after_the_pivot_and_not_in_the_copy()
    {
        await using var vm = await TestVm.CreateAsync(new DiskSpec("vda", FillPattern: 0x11));
        await vm.StartAsync();
        var hooked = new HookedTarget(BackupTargets.Open(Repository))
        {
            BeforeFirstFile = async () =>
            {
                await vm.WriteAsGuestAsync("vda", 0, 0xab, MiB);          // over data the copy must not see
                await vm.WriteAsGuestAsync("vda", 8 * MiB, 0xcd, 2 * MiB); // into a hole
            },
            DuringCopy = () => vm.WriteAsGuestAsync("vda", 16 * MiB, 0xef, MiB),
        };

        var result = await BackupAsync(vm, hooked);

        Assert.Equal(RunOutcome.Succeeded, result.Outcome);
        Assert.True(hooked.SawDuringCopy, "the copy must have been running while the guest wrote");
        Assert.Equal(vm.Disk("vda").Path, await vm.ActiveSourceAsync("vda"));
        Assert.Equal(vm.Disk("vda").Path, await vm.ActiveSourceAsync("vda", inactive: true));
        Assert.Empty(OverlayFiles(vm));
        Assert.True(await vm.GuestReadMatchesAsync("vda", 0, MiB, 0xab));
        Assert.True(await vm.GuestReadMatchesAsync("vda", 16 * MiB, MiB, 0xef));

        // The copy is the guest view at snapshot time.
        var copy = CopyOf(result, "vda.0");
        Assert.True(await TestVm.ImageMatchesAsync(copy, "qcow2", 0, MiB, 0x11));
        Assert.True(await TestVm.ImageMatchesAsync(copy, "qcow2", 8 * MiB, 2 * MiB, 0x00));
        Assert.True(await TestVm.ImageMatchesAsync(copy, "qcow2", 16 * MiB, MiB, 0x00));

        // The writes are in the base image itself once QEMU is gone.
        await vm.DestroyAsync();
        var basePath = vm.Disk("vda").Path;
        Assert.True(await TestVm.ImageMatchesAsync(basePath, "qcow2", 0, MiB, 0xab));
        Assert.True(await TestVm.ImageMatchesAsync(basePath, "qcow2", 8 * MiB, 2 * MiB, 0xcd));
        Assert.True(await TestVm.ImageMatchesAsync(basePath, "qcow2", 16 * MiB, MiB, 0xef));
        Assert.NotNull(result.OverlayLifetime);
        Assert.True(result.OverlayLifetime >= result.CopyTime);
    }

    [Fact]
    public async Task Two_disks_qcow2_and_raw_are_snapshotted_atomically_and_both_pivot_back()
    {
        await using var vm = await TestVm.CreateAsync(new DiskSpec("vda"), new DiskSpec("vdb", Format: "raw", FillPattern: 0x22));
        await vm.StartAsync();
        string? vdaOverlay = null, vdbOverlay = null;
        var hooked = new HookedTarget(BackupTargets.Open(Repository))
        {
            BeforeFirstFile = async () =>
            {
                vdaOverlay = await vm.ActiveSourceAsync("vda");
                vdbOverlay = await vm.ActiveSourceAsync("vdb");
                await vm.WriteAsGuestAsync("vdb", 0, 0x5e, MiB);
            },
        };

        var result = await BackupAsync(vm, hooked);

        Assert.Equal(RunOutcome.Succeeded, result.Outcome);
        // Both disks were on overlays of the same run before the first byte was copied: one snapshot.
        Assert.Equal(result.RunId, OverlayNaming.RunIdOf(vdaOverlay));
        Assert.Equal(result.RunId, OverlayNaming.RunIdOf(vdbOverlay));
        Assert.Equal(["vda", "vdb"], result.Disks.Select(d => d.Target));
        Assert.All(result.Disks, d => Assert.True(d.BackOnBase));
        Assert.Equal(vm.Disk("vda").Path, await vm.ActiveSourceAsync("vda"));
        Assert.Equal(vm.Disk("vdb").Path, await vm.ActiveSourceAsync("vdb"));
        Assert.Empty(OverlayFiles(vm));
        Assert.True(await TestVm.ImageMatchesAsync(CopyOf(result, "vdb.0"), "raw", 0, MiB, 0x22));
        await vm.DestroyAsync();
        Assert.True(await TestVm.ImageMatchesAsync(vm.Disk("vdb").Path, "raw", 0, MiB, 0x5e));
    }

    [Fact]
    public async Task Linked_clone_copies_both_chain_files_and_leaves_the_template_untouched()
    {
        await using var vm = await TestVm.CreateAsync(new DiskSpec("vda", WithTemplate: true, FillPattern: 0x40));
        var template = vm.Disk("vda").TemplatePath!;
        var templateBefore = Sha256(template);
        await vm.StartAsync();
        var hooked = new HookedTarget(BackupTargets.Open(Repository)) { BeforeFirstFile = () => vm.WriteAsGuestAsync("vda", 0, 0x77, MiB) };

        var result = await BackupAsync(vm, hooked);

        Assert.Equal(RunOutcome.Succeeded, result.Outcome);
        var files = Assert.Single(result.Disks).Files;
        Assert.Equal(["vda.0", "vda.1"], files.Select(f => f.FileKey));
        Assert.Equal(vm.Disk("vda").Path, files[0].SourcePath);
        Assert.Equal(template, files[1].SourcePath);
        Assert.Equal(Sha256(template), Sha256(CopyOf(result, "vda.1")));
        await vm.DestroyAsync();
        Assert.Equal(templateBefore, Sha256(template));
        Assert.True(await TestVm.ImageMatchesAsync(vm.Disk("vda").Path, "qcow2", 0, MiB, 0x77));
    }

    [Fact]
    public async Task Cdrom_and_readonly_disks_are_skipped_with_reasons()
    {
        await using var vm = await TestVm.CreateAsync(new DiskSpec("vda"), new DiskSpec("hdc", Device: "cdrom"), new DiskSpec("vdb", Format: "raw", ReadOnly: true));
        await vm.StartAsync();

        var result = await BackupAsync(vm);

        Assert.Equal(RunOutcome.Succeeded, result.Outcome);
        Assert.Equal(["vda"], result.Disks.Select(d => d.Target));
        Assert.Equal(["hdc", "vdb"], result.Skipped.Select(s => s.Target).Order());
        Assert.Contains("cdrom", result.Skipped.Single(s => s.Target == "hdc").Reason, StringComparison.Ordinal);
        Assert.Contains("read-only", result.Skipped.Single(s => s.Target == "vdb").Reason, StringComparison.Ordinal);
        Assert.Equal(vm.Disk("vdb").Path, await vm.ActiveSourceAsync("vdb"));
        Assert.Equal(vm.Disk("hdc").Path, await vm.ActiveSourceAsync("hdc"));
        Assert.Empty(OverlayFiles(vm));
    }

    [Fact]
    public async Task Shut_off_domain_is_copied_without_a_snapshot()
    {
        await using var vm = await TestVm.CreateAsync(new DiskSpec("vda", FillPattern: 0x31));
        var before = await vm.InactiveXmlAsync();

        var result = await BackupAsync(vm);

        Assert.Equal(RunOutcome.Succeeded, result.Outcome);
        Assert.Equal(Consistency.ShutOff, result.Consistency);
        Assert.Null(result.OverlayLifetime);
        Assert.Equal("shut off", await vm.StateAsync());
        Assert.Equal(before, await vm.InactiveXmlAsync());
        Assert.Equal(Sha256(vm.Disk("vda").Path), Sha256(CopyOf(result, "vda.0")));
        using var repository = Storage.Repository.BackupRepository.Open(Repository);
        var stored = Assert.Single(repository.FindPoint(result.RestorePointId!)!.Files);
        Assert.Equal(stored.Digest, Assert.Single(result.Disks[0].Files).Digest);
    }

    [Fact]
    public async Task A_domain_started_during_the_copy_of_a_shut_off_backup_fails_that_run()
    {
        await using var vm = await TestVm.CreateAsync(new DiskSpec("vda"));
        var hooked = new HookedTarget(BackupTargets.Open(Repository)) { BeforeFirstFile = vm.StartAsync };

        var result = await BackupAsync(vm, hooked);

        Assert.Equal(RunOutcome.Failed, result.Outcome);
        Assert.Contains("started", result.Error, StringComparison.Ordinal);
        Assert.Null(result.RestorePointId);
        Assert.Equal("running", await vm.StateAsync());
        Assert.Empty(OverlayFiles(vm));
    }

    [Fact]
    public async Task Quiesce_preferred_without_an_agent_records_crash_consistent()
    {
        await using var vm = await TestVm.CreateAsync(new DiskSpec("vda"));
        await vm.StartAsync();

        var result = await BackupAsync(vm, quiesce: QuiesceMode.Preferred);

        Assert.Equal(RunOutcome.Succeeded, result.Outcome);
        Assert.Equal(Consistency.CrashConsistent, result.Consistency);
    }
}
