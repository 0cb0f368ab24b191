using Backupd.Daemon.Images;
using Backupd.Daemon.Chains;
using Backupd.Daemon.Libvirt;
using Backupd.Daemon.Workflow;
using Backupd.Integration.Fixtures;
using Backupd.Policies.Model;
using Microsoft.Extensions.Logging.Abstractions;

namespace Backupd.Integration;

/// <summary>
/// Chain shorten and move-disk in-process against real libvirtd + QEMU, while the guest keeps writing (qemu-io in
/// the running QEMU): no write is lost, the guest never stops, and a backup taken afterwards restores the same data.
/// </summary>
[Trait("Category", "Integration")]
public sealed class ChainTests : IDisposable
{
    private const long MiB = TestVm.MiB;
    private const long Rate = 1 << 20; // slow enough that the guest writes many times during each job
    private readonly string work = Directory.CreateTempSubdirectory("bkd-chain-").FullName;
    private string State => Path.Combine(work, "state");

    public void Dispose() => Directory.Delete(work, recursive: true);

    private static async Task<(DomainInfo Domain, DomainDisk Disk, DiskChain Chain)> ReadAsync(LibvirtHypervisor hv, TestVm vm, string target)
    {
        var domain = hv.FindDomain(vm.Name)!;
        var disk = ChainInspector.ChainDisks(hv, domain).Single(d => d.Target == target);
        var chain = await ChainInspector.ReadDiskAsync(domain, disk, await ImageUsage.ScanAsync(hv, CancellationToken.None), null, CancellationToken.None);
        return (domain, disk, chain);
    }

    /// <summary>Waits until the writer has at least one acknowledged write (the guest is writing before the job starts).</summary>
    private static async Task WritingAsync(GuestWriter writer)
    {
        for (var i = 0; i < 600 && writer.Writes.IsEmpty; i++) await Task.Delay(100);
        Assert.False(writer.Writes.IsEmpty, "the guest writer never completed a write");
    }

    /// <summary>A backup of the VM now, and the single restored image checked for every write.</summary>
    private async Task AssertBackupRestoresAsync(LibvirtHypervisor hv, TestVm vm, string format, IEnumerable<GuestWrite> writes)
    {
        var repositoryPath = Path.Combine(work, "repo");
        var options = new WorkflowOptions { StateDirectory = State, MinimumOverlayFreeBytes = 16 * MiB };
        BackupResult result;
        using (var target = BackupTargets.Open(repositoryPath))
            result = await new BackupWorkflow(hv, new QemuImg(), target, options, NullLogger.Instance)
                .RunAsync(new BackupRequest(vm.Name, [], [], QuiesceMode.Off), CancellationToken.None);
        Assert.Equal(RunOutcome.Succeeded, result.Outcome);
        var restored = Path.Combine(work, $"restored-{result.RestorePointId}");
        using (var repository = Storage.Repository.BackupRepository.Open(repositoryPath))
            await repository.RestoreFileAsync(result.RestorePointId!, "vda.0", restored, null, CancellationToken.None);
        Assert.Empty(await ChainFixture.MissingInImageAsync(restored, format, writes));
    }

    [Theory]
    [InlineData("commit")]
    [InlineData("pull")]
    public async Task A_four_layer_chain_is_shortened_to_one_image_live_while_the_guest_keeps_writing(string method)
    {
        await using var vm = await TestVm.CreateAsync(new DiskSpec("vda"));
        await vm.StartAsync();
        var layerWrites = await ChainFixture.BuildFourLayersAsync(vm, "vda");
        using var hv = LibvirtHypervisor.Open("qemu:///system");
        var (domain, disk, chain) = await ReadAsync(hv, vm, "vda");
        Assert.Equal(4, chain.Depth);
        var plan = ChainPlanner.Plan(chain, method == "pull" ? ShortenMethod.Pull : ShortenMethod.Commit, 1, null, domain.Uuid);

        await using var writer = new GuestWriter(vm, "vda", 32 * MiB).Start();
        await WritingAsync(writer);
        var started = DateTime.UtcNow;
        var result = await new ChainShortener(hv, new ChainJournal(State), NullLogger.Instance)
            .RunAsync(domain, disk, chain, plan, new ShortenOptions(Rate), null, CancellationToken.None);
        var ended = DateTime.UtcNow;
        var during = writer.CountBetween(started, ended);
        var guestWrites = await writer.StopAsync();

        // No downtime: the guest's writes went on, acknowledged, all through the job.
        Assert.True(during >= 3, $"only {during} guest writes completed during the {result.Seconds:0.0}s {method}");
        var expected = method == "pull" ? Path.Combine(vm.Directory, "cur.qcow2") : vm.Disk("vda").Path;
        Assert.Equal(expected, result.Active);
        Assert.Equal(expected, await vm.ActiveSourceAsync("vda"));
        Assert.Equal(expected, await vm.ActiveSourceAsync("vda", inactive: true));
        Assert.Equal(1, await ChainFixture.DepthAsync(expected));
        Assert.Empty(await ChainFixture.MissingInGuestAsync(vm, "vda", [.. layerWrites, .. guestWrites]));
        Assert.Empty(new ChainJournal(State).OpenEntries());
        // Files the admin made (virsh snapshots) are kept without --delete-merged.
        Assert.True(File.Exists(Path.Combine(vm.Directory, "sn1.qcow2")));

        await AssertBackupRestoresAsync(hv, vm, "qcow2", [.. layerWrites, .. guestWrites]);
    }

    [Fact]
    public async Task Depth_two_by_commit_keeps_the_active_layer_and_deletes_merged_layers_only_with_delete_merged()
    {
        await using var vm = await TestVm.CreateAsync(new DiskSpec("vda"));
        await vm.StartAsync();
        var writes = await ChainFixture.BuildFourLayersAsync(vm, "vda");
        using var hv = LibvirtHypervisor.Open("qemu:///system");
        var (domain, disk, chain) = await ReadAsync(hv, vm, "vda");
        var plan = ChainPlanner.Plan(chain, ShortenMethod.Commit, 2, null, domain.Uuid);
        Assert.False(plan.ActiveCommit);

        var result = await new ChainShortener(hv, new ChainJournal(State), NullLogger.Instance)
            .RunAsync(domain, disk, chain, plan, new ShortenOptions(DeleteMerged: true), null, CancellationToken.None);

        var cur = Path.Combine(vm.Directory, "cur.qcow2");
        Assert.Equal(cur, await vm.ActiveSourceAsync("vda"));
        Assert.Equal(2, await ChainFixture.DepthAsync(cur));
        Assert.Equal([Path.Combine(vm.Directory, "sn2.qcow2"), Path.Combine(vm.Directory, "sn1.qcow2")], result.Deleted);
        Assert.False(File.Exists(Path.Combine(vm.Directory, "sn1.qcow2")));
        Assert.Empty(await ChainFixture.MissingInGuestAsync(vm, "vda", writes));
    }

    [Fact]
    public async Task A_shut_off_domain_is_shortened_offline_by_commit_and_by_pull()
    {
        await using var vm = await TestVm.CreateAsync(new DiskSpec("vda"));
        await vm.StartAsync();
        var writes = await ChainFixture.BuildFourLayersAsync(vm, "vda");
        await vm.DestroyAsync();
        using var hv = LibvirtHypervisor.Open("qemu:///system");
        var shortener = new ChainShortener(hv, new ChainJournal(State), NullLogger.Instance);

        var (domain, disk, chain) = await ReadAsync(hv, vm, "vda");
        await shortener.RunAsync(domain, disk, chain, ChainPlanner.Plan(chain, ShortenMethod.Pull, 3, null, domain.Uuid), new ShortenOptions(), null, CancellationToken.None);
        var cur = Path.Combine(vm.Directory, "cur.qcow2");
        Assert.Equal(3, await ChainFixture.DepthAsync(cur));
        Assert.Empty(await ChainFixture.MissingInImageAsync(cur, "qcow2", writes));

        (domain, disk, chain) = await ReadAsync(hv, vm, "vda");
        await shortener.RunAsync(domain, disk, chain, ChainPlanner.Plan(chain, ShortenMethod.Commit, 1, null, domain.Uuid), new ShortenOptions(), null, CancellationToken.None);
        Assert.Equal(vm.Disk("vda").Path, await vm.ActiveSourceAsync("vda", inactive: true));
        Assert.Equal(1, await ChainFixture.DepthAsync(vm.Disk("vda").Path));
        Assert.Empty(await ChainFixture.MissingInImageAsync(vm.Disk("vda").Path, "qcow2", writes));

        await vm.StartAsync(); // the redefined domain boots on the merged base
        Assert.Empty(await ChainFixture.MissingInGuestAsync(vm, "vda", writes));
    }

    [Theory]
    [InlineData("qcow2")]
    [InlineData("raw")]
    public async Task Move_disk_live_puts_every_write_made_during_the_mirror_into_the_destination(string format)
    {
        await using var vm = await TestVm.CreateAsync(new DiskSpec("vda", WithTemplate: true));
        await vm.StartAsync();
        List<GuestWrite> before = [new(0, MiB, 0x11), new(MiB, MiB, 0x12)]; // template's and the clone's own data
        await vm.WriteAsGuestAsync("vda", 8 * MiB, 0x5a, 4 * MiB);
        before.Add(new GuestWrite(8 * MiB, 4 * MiB, 0x5a));
        using var hv = LibvirtHypervisor.Open("qemu:///system");
        var (domain, disk, chain) = await ReadAsync(hv, vm, "vda");
        var destination = Path.Combine(vm.Directory, $"moved.{format}");

        await using var writer = new GuestWriter(vm, "vda", 32 * MiB).Start();
        await WritingAsync(writer);
        var started = DateTime.UtcNow;
        var result = await new DiskMover(hv, new ChainJournal(State), NullLogger.Instance)
            .RunAsync(domain, disk, chain, new MoveOptions(destination, format, false, Rate, false), null, CancellationToken.None);
        var during = writer.CountBetween(started, DateTime.UtcNow);
        var guestWrites = await writer.StopAsync();

        Assert.True(during >= 3, $"only {during} guest writes completed during the {result.Seconds:0.0}s mirror");
        Assert.Equal(destination, await vm.ActiveSourceAsync("vda"));
        Assert.Equal(destination, await vm.ActiveSourceAsync("vda", inactive: true));
        Assert.Contains($"type='{format}'", await vm.InactiveXmlAsync(), StringComparison.Ordinal);
        Assert.False(File.Exists(vm.Disk("vda").Path), "the old image must go after the pivot (no --keep-source)");
        Assert.False(File.Exists(vm.Disk("vda").TemplatePath!), "a full copy leaves the template unused by anyone: it goes too");
        await AssertBackupRestoresAsync(hv, vm, format, [.. before, .. guestWrites]);

        await vm.DestroyAsync();
        Assert.Equal(1, await ChainFixture.DepthAsync(destination));
        Assert.Empty(await ChainFixture.MissingInImageAsync(destination, format, [.. before, .. guestWrites]));
    }

    [Fact]
    public async Task Move_disk_offline_converts_and_redefines()
    {
        await using var vm = await TestVm.CreateAsync(new DiskSpec("vda", WithTemplate: true));
        using var hv = LibvirtHypervisor.Open("qemu:///system");
        var (domain, disk, chain) = await ReadAsync(hv, vm, "vda");
        var destination = Path.Combine(vm.Directory, "moved.raw");

        var result = await new DiskMover(hv, new ChainJournal(State), NullLogger.Instance)
            .RunAsync(domain, disk, chain, new MoveOptions(destination, "raw", false, null, KeepSource: true), null, CancellationToken.None);

        Assert.False(result.Live);
        Assert.Equal(destination, await vm.ActiveSourceAsync("vda", inactive: true));
        Assert.True(File.Exists(vm.Disk("vda").Path), "--keep-source keeps the old image");
        Assert.Empty(await ChainFixture.MissingInImageAsync(destination, "raw", [new(0, MiB, 0x11), new(MiB, MiB, 0x12)]));
    }
}
