using System.Diagnostics;
using Backupd.Daemon.Libvirt;
using Backupd.Integration.Fixtures;

namespace Backupd.Integration;

/// <summary>The commit bandwidth reaches QEMU: a limited active commit of N bytes needs about N / rate to get READY.</summary>
public sealed class CommitBandwidthTests
{
    [Fact]
    public async Task Active_commit_at_a_byte_rate_takes_its_time_and_still_pivots()
    {
        const long written = 8 << 20, rate = 2 << 20; // 4 s at the limit; unlimited this takes well under a second
        await using var vm = await TestVm.CreateAsync(new DiskSpec("vda"));
        await vm.StartAsync();
        using var hv = LibvirtHypervisor.Open("qemu:///system");
        using var runLock = Backupd.Daemon.Workflow.DomainLock.Acquire(Path.GetTempPath(), vm.Uuid, vm.Name);
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
}
