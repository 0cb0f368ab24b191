using Backupd.Daemon.Workflow;
using Backupd.Integration.Fixtures;
using Backupd.Storage.Catalog;

namespace Backupd.Integration;

/// <summary>
/// Tests that stop and start the machine's libvirtd. Every other libvirt test (of this process, and any other on the
/// machine) loses its connection meanwhile, so xunit runs this collection alone, after all the parallel collections.
/// </summary>
[CollectionDefinition(Name, DisableParallelization = true)]
[Trait("Category", "Integration")]
public sealed class LibvirtdRestartingTests
{
    public const string Name = "libvirtd restarting";
}

/// <summary>
/// Issue 11 item 5: libvirtd restarted for real (SIGTERM, then `setsid /usr/sbin/libvirtd -d` as scripts/setup-env
/// starts it) while `backupd backup --domain` copies, and while it waits for the active commit to become ready.
/// QEMU keeps running (and committing) through the restart; the run's connection gets EOF. The run must reconnect,
/// re-query and finish (point recorded, VM on its base), and in any case leave nothing behind: no overlay, no
/// block job, no open journal entry, both definitions on the base. libvirtd is restored in a finally whatever happens.
/// </summary>
[Collection(LibvirtdRestartingTests.Name)]
[Trait("Category", "Integration")]
public sealed class LibvirtdRestartTests(PostgresDatabase database) : CatalogProcessTestBase(database)
{
    private static readonly TimeSpan Downtime = TimeSpan.FromSeconds(1);

    [Fact]
    public async Task Libvirtd_restarted_during_the_copy_the_run_reconnects_finishes_and_the_vm_is_on_its_base()
    {
        await using var vm = await SlowCommitRun.CreateVmAsync();
        await using var store = new CatalogStore(Database.ConnectionString);
        SlowCommitRun? run = null;
        try
        {
            run = await SlowCommitRun.StartAsync(vm, Config.Path, Repository, store, copyBandwidth: "2MiB/s"); // 64 MiB: half a minute of copy
            await SystemLibvirtd.RestartAsync(Downtime);
            Assert.Equal("copy", (await RunOfAsync(store, vm)).Step); // the restart fell inside the copy

            Assert.True(await run.ExitCodeAsync() == 0, run.AllOutput);
            await AssertRecordedAndNothingLeftAsync(store, vm);
        }
        finally
        {
            run?.Dispose();
            await SystemLibvirtd.EnsureRunningAsync();
        }
    }

    [Fact]
    public async Task Libvirtd_restarted_during_the_commit_wait_the_job_survives_the_run_reconnects_and_pivots_back()
    {
        await using var vm = await SlowCommitRun.CreateVmAsync();
        await using var store = new CatalogStore(Database.ConnectionString);
        SlowCommitRun? run = null;
        try
        {
            // 48 MiB in the overlay at 2 MiB/s: the commit needs about 24 s to become ready.
            run = await SlowCommitRun.StartAsync(vm, Config.Path, Repository, store, commitBandwidth: "2MiB/s", guestBytes: 48 * MiB);
            await run.WaitForAsync(r => r is { Step: "commit", ProgressTotal: > 0 }, "the active commit running");
            await SystemLibvirtd.RestartAsync(Downtime);
            // The restarted libvirtd found QEMU's job again: the run is still waiting for it, not failed or pivoted.
            // (virsh prints the job's type and percentage on stderr; stdout has the throttle this run set.)
            var job = await Tools.Virsh("blockjob", vm.Name, "vda", "--info");
            Assert.Contains("Bandwidth limit: 2097152 bytes/s", job, StringComparison.Ordinal);
            Assert.Equal("commit", (await RunOfAsync(store, vm)).Step);

            Assert.True(await run.ExitCodeAsync() == 0, run.AllOutput);
            await AssertRecordedAndNothingLeftAsync(store, vm, 48 * MiB);
        }
        finally
        {
            run?.Dispose();
            await SystemLibvirtd.EnsureRunningAsync();
        }
    }

    private static async Task<RunRow> RunOfAsync(CatalogStore store, TestVm vm) =>
        Assert.Single(await store.ListRunsAsync(Guid.Parse(vm.Uuid), 10, CancellationToken.None));

    private async Task AssertRecordedAndNothingLeftAsync(CatalogStore store, TestVm vm, long guestBytes = SlowCommitRun.GuestBytes)
    {
        var recorded = await RunOfAsync(store, vm);
        var point = Assert.Single(await store.ListPointsAsync(Guid.Parse(vm.Uuid), null, CancellationToken.None));
        Assert.Equal((RunStates.Succeeded, point.Id), (recorded.State, recorded.RestorePointId));
        Assert.Equal("running", await vm.StateAsync());
        Assert.Equal(vm.Disk("vda").Path, await vm.ActiveSourceAsync("vda"));
        Assert.Equal(vm.Disk("vda").Path, await vm.ActiveSourceAsync("vda", inactive: true));
        Assert.DoesNotContain(".backupd-", await vm.LiveXmlAsync(), StringComparison.Ordinal);
        Assert.DoesNotContain(".backupd-", await vm.InactiveXmlAsync(), StringComparison.Ordinal);
        Assert.DoesNotContain(Directory.EnumerateFiles(vm.Directory), OverlayNaming.IsOverlay);
        Assert.Contains("No current block job", await Tools.Virsh("blockjob", vm.Name, "vda", "--info"), StringComparison.Ordinal);
        Assert.Empty(new RunJournal(Config.StateDirectory).OpenEntries());
        // The guest's writes during the copy were merged back, not lost with the overlay.
        Assert.True(await vm.GuestReadMatchesAsync("vda", SlowCommitRun.GuestOffset, guestBytes, SlowCommitRun.GuestPattern));
    }
}
