using System.Diagnostics;
using Backupd.Daemon.Images;
using Backupd.Daemon.Libvirt;
using Backupd.Daemon.Workflow;
using Backupd.Integration.Fixtures;
using Backupd.Policies.Model;
using Microsoft.Extensions.Logging.Abstractions;

namespace Backupd.Integration;

/// <summary>The commit bandwidth reaches QEMU: a limited active commit of N bytes needs about N / rate to get READY.</summary>
[Trait("Category", "Integration")]
public sealed class CommitBandwidthTests
{
    [Fact]
    public async Task Active_commit_at_a_byte_rate_takes_its_time_and_still_pivots()
    {
        const long written = 8 << 20, rate = 2 << 20; // 4 s at the limit; unlimited this takes well under a second
        await using var vm = await TestVm.CreateAsync(new DiskSpec("vda"));
        await vm.StartAsync();
        using var hv = LibvirtHypervisor.Open("qemu:///system");
        using var runLock = Backupd.Daemon.Workflow.HostRunLock.Acquire(Path.GetTempPath(), vm.Uuid, vm.Name);
        var basePath = vm.Disk("vda").Path;
        var overlay = basePath + ".backupd-20260101T000000Z-0000b0d1.qcow2";
        hv.CreateDiskOnlySnapshot(vm.Uuid, $"<domainsnapshot><disks><disk name='vda' snapshot='external' type='file'><driver type='qcow2'/><source file='{overlay}'/></disk></disks></domainsnapshot>", quiesce: false);
        try
        {
            await vm.WriteAsGuestAsync("vda", 0, 0x5a, written); // lands in the overlay: the commit has 8 MiB to merge

            var clock = Stopwatch.StartNew();
            hv.StartActiveCommit(vm.Uuid, "vda", rate);
            Assert.Equal(BlockJobOutcome.Ready, await hv.WaitForBlockJobAsync(vm.Uuid, "vda", BlockJobGoal.Ready, TimeSpan.FromSeconds(60)));
            var elapsed = clock.Elapsed;

            // QEMU's rate limiter lets the first slice through at once: allow some slack below 4 s.
            Assert.True(elapsed >= TimeSpan.FromSeconds(2.5), $"{written} bytes committed at {rate} B/s were READY after only {elapsed}");
        }
        finally
        {
            if (hv.GetBlockJob(vm.Uuid, "vda") is null) hv.StartActiveCommit(vm.Uuid, "vda");
            await hv.WaitForBlockJobAsync(vm.Uuid, "vda", BlockJobGoal.Ready, TimeSpan.FromSeconds(60));
            hv.Pivot(vm.Uuid, "vda");
            await hv.WaitForBlockJobAsync(vm.Uuid, "vda", BlockJobGoal.Gone, TimeSpan.FromSeconds(30));
            File.Delete(overlay);
        }
        Assert.Equal(basePath, await vm.ActiveSourceAsync("vda"));
        Assert.True(await vm.GuestReadMatchesAsync("vda", 0, written, 0x5a));
    }

    [Fact]
    public async Task A_live_backup_with_both_limits_copies_no_faster_than_the_copy_limit_and_ends_on_the_base()
    {
        const long rate = 1 << 20; // the smallest rate a policy accepts
        await Requirements.LibvirtAndQemuAsync();
        var work = Directory.CreateTempSubdirectory("bkd-bw-live-").FullName;
        try
        {
            await using var vm = await TestVm.CreateAsync(new DiskSpec("vda", SizeBytes: 8 << 20));
            await vm.StartAsync();
            using var hv = LibvirtHypervisor.Open("qemu:///system");
            var options = new WorkflowOptions { StateDirectory = Path.Combine(work, "state"), MinimumOverlayFreeBytes = 1 << 20, CopyBandwidth = rate, CommitBandwidth = rate };
            using var target = BackupTargets.Open(Path.Combine(work, "repo"), options.CopyBandwidth);

            var result = await new BackupWorkflow(hv, new QemuImg(), target, options, NullLogger.Instance)
                .RunAsync(new BackupRequest(vm.Name, [], [], QuiesceMode.Off), CancellationToken.None);

            Assert.Equal(RunOutcome.Succeeded, result.Outcome);
            var read = result.Disks.Sum(d => d.BytesRead);
            Assert.True(read >= 1 << 20, $"only {read} bytes read: too little to measure a rate");
            Assert.True(result.CopyTime >= TimeSpan.FromSeconds((double)read / rate), $"{read} bytes copied at {rate} B/s in only {result.CopyTime}");
            Assert.Equal(vm.Disk("vda").Path, await vm.ActiveSourceAsync("vda"));
        }
        finally
        {
            Directory.Delete(work, recursive: true);
        }
    }
}
