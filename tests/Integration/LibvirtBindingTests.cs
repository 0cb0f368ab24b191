using Backupd.Daemon.Libvirt;
using Backupd.Integration.Fixtures;

namespace Backupd.Integration;

/// <summary>Our own bindings against the real libvirtd: lookups, errors, XML, block jobs and BLOCK_JOB_2 events.</summary>
[Trait("Category", "Integration")]
public sealed class LibvirtBindingTests
{
    [Fact]
    public async Task Lookup_state_and_xml_of_a_real_domain()
    {
        await using var vm = await TestVm.CreateAsync(new DiskSpec("vda"));
        using var hv = LibvirtHypervisor.Open("qemu:///system");

        var stopped = hv.FindDomain(vm.Name)!;
        Assert.Equal((vm.Uuid, DomainRunState.Shutoff, (int?)null, true), (stopped.Uuid, stopped.State, stopped.Id, stopped.Persistent));
        Assert.Equal(vm.Name, hv.FindDomain(vm.Uuid)!.Name);
        Assert.Null(hv.FindDomain("bkd-surely-missing"));
        Assert.Contains(hv.ListDomains(), d => d.Uuid == vm.Uuid);

        await vm.StartAsync();
        var running = hv.FindDomain(vm.Name)!;
        Assert.Equal(DomainRunState.Running, running.State);
        Assert.NotNull(running.Id);
        var disk = Assert.Single(DomainXml.ParseDisks(hv.GetXml(vm.Uuid, DomainXmlKind.Live)));
        Assert.Equal(vm.Disk("vda").Path, disk.SourcePath);
        Assert.Null(hv.GetBlockJob(vm.Uuid, "vda"));

        var e = Assert.Throws<LibvirtException>(() => hv.GetBlockJob(vm.Uuid, "vdz"));
        Assert.Equal(LibvirtErrorCodes.InvalidArg, e.Code);
        Assert.False(hv.PingAgent(vm.Uuid, TimeSpan.FromSeconds(1)));
    }

    [Fact]
    public async Task Active_commit_reports_ready_by_event_and_pivots_back()
    {
        await using var vm = await TestVm.CreateAsync(new DiskSpec("vda"));
        await vm.StartAsync();
        using var hv = LibvirtHypervisor.Open("qemu:///system");
        // Hold the run lock like a backup does, so a concurrent `backupd recover` leaves this overlay alone.
        using var runLock = Backupd.Daemon.Workflow.HostRunLock.Acquire(Path.GetTempPath(), vm.Uuid, vm.Name);
        var basePath = vm.Disk("vda").Path;
        var overlay = basePath + ".backupd-20260101T000000Z-0000beef.qcow2";
        hv.CreateDiskOnlySnapshot(vm.Uuid, $"<domainsnapshot><disks><disk name='vda' snapshot='external' type='file'><driver type='qcow2'/><source file='{overlay}'/></disk></disks></domainsnapshot>", quiesce: false);
        Assert.Equal(overlay, await vm.ActiveSourceAsync("vda"));

        var readyEvent = hv.Events.Next(vm.Uuid, "vda");
        hv.StartActiveCommit(vm.Uuid, "vda");
        var job = hv.GetBlockJob(vm.Uuid, "vda");
        Assert.Equal(BlockJobType.ActiveCommit, job?.Type);

        Assert.Same(readyEvent, await Task.WhenAny(readyEvent, Task.Delay(TimeSpan.FromSeconds(30))));
        Assert.Equal(3 /* READY */, await readyEvent);
        Assert.Equal(BlockJobOutcome.Ready, await hv.WaitForBlockJobAsync(vm.Uuid, "vda", BlockJobGoal.Ready, TimeSpan.FromSeconds(30)));
        var pivot = Assert.Throws<LibvirtException>(() => hv.StartActiveCommit(vm.Uuid, "vda"));
        Assert.Equal(LibvirtErrorCodes.BlockCopyActive, pivot.Code);

        hv.Pivot(vm.Uuid, "vda");
        Assert.Equal(BlockJobOutcome.Gone, await hv.WaitForBlockJobAsync(vm.Uuid, "vda", BlockJobGoal.Gone, TimeSpan.FromSeconds(30)));
        Assert.Equal(basePath, await vm.ActiveSourceAsync("vda"));
        Assert.Equal(basePath, await vm.ActiveSourceAsync("vda", inactive: true));
        File.Delete(overlay);
    }
}
