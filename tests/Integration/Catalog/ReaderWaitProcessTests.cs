using Backupd.Daemon.Workflow;
using Backupd.Integration.Fixtures;
using Backupd.Storage.Catalog;
using Backupd.Storage.Repository;

namespace Backupd.Integration.Catalog;

/// <summary>
/// `backupd backup --domain` (through the catalog) while a restore reads the VM's group in the repository (issue 16,
/// item 6): the backup decides before the snapshot whether it can have the group, waits for the reader up to
/// --reader-wait, and is either refused with nothing done (exit 4, no snapshot, no run recorded) or succeeds.
/// The reader is a real restore in this process, held inside its read by a progress callback.
/// </summary>
[Trait("Category", "Integration")]
public sealed class ReaderWaitProcessTests(PostgresDatabase database) : CatalogProcessTestBase(database)
{
    /// <summary>Blocks the restore reporting to it, inside the group's read lock, until released.</summary>
    private sealed class HeldRead : IProgress<long>, IDisposable
    {
        private readonly ManualResetEventSlim _release = new();
        private readonly TaskCompletionSource _entered = new(TaskCreationOptions.RunContinuationsAsynchronously);

        public Task Entered => _entered.Task;

        public void Report(long value)
        {
            _entered.TrySetResult();
            _release.Wait();
        }

        public void Release() => _release.Set();

        public void Dispose()
        {
            _release.Set();
            _release.Dispose();
        }
    }

    private async Task<(TestVm Vm, BackupRepository Repo, string PointId)> VmWithOnePointAsync()
    {
        var vm = await TestVm.CreateAsync(new DiskSpec("vda"));
        await vm.StartAsync();
        await vm.WriteAsGuestAsync("vda", MiB, 0x5a, MiB);
        var first = await Backupd("backup", "--domain", vm.Name, "--to", Repository, "--json");
        Assert.True(first.ExitCode == 0, $"the first backup exited {first.ExitCode}: {first.Stderr}");
        var repo = BackupRepository.Open(Repository);
        return (vm, repo, Assert.Single(repo.ListPoints(vm.Uuid)).PointId);
    }

    private async Task<(Task Restore, HeldRead Held)> HoldRestoreAsync(BackupRepository repo, string pointId)
    {
        var held = new HeldRead();
        var restore = repo.RestoreFileAsync(pointId, "vda.0", Path.Combine(Config.Directory, $"restored-{Guid.NewGuid():N}"), held, CancellationToken.None);
        await held.Entered.WaitAsync(TimeSpan.FromSeconds(60));
        return (restore, held);
    }

    [Fact]
    public async Task A_restore_that_outlasts_the_reader_wait_refuses_the_backup_before_the_snapshot_and_records_no_run()
    {
        var (vm, repo, pointId) = await VmWithOnePointAsync();
        await using var _ = vm;
        using var __ = repo;
        var (restore, held) = await HoldRestoreAsync(repo, pointId);
        using var ___ = held;
        var xmlBefore = await vm.LiveXmlAsync();

        var refused = await Backupd("backup", "--domain", vm.Name, "--to", Repository, "--reader-wait", "2s");

        var xmlAfter = await vm.LiveXmlAsync();
        held.Release();
        await restore;
        Assert.True(refused.ExitCode == 4, $"exited {refused.ExitCode}, not 4 (busy): {refused.Stderr}");
        Assert.Contains("being read by a restore or verify", refused.Stderr, StringComparison.Ordinal);
        Assert.Equal(xmlBefore, xmlAfter); // no snapshot was taken: the disks never left their base images
        Assert.DoesNotContain(Directory.EnumerateFiles(vm.Directory), OverlayNaming.IsOverlay);
        await using var store = new CatalogStore(Database.ConnectionString);
        var runs = await store.ListRunsAsync(Guid.Parse(vm.Uuid), 10, CancellationToken.None);
        Assert.Equal(RunStates.Succeeded, Assert.Single(runs).State); // the first backup only: no failed run
        Assert.Single(repo.ListPoints(vm.Uuid));
    }

    [Fact]
    public async Task A_backup_started_during_a_restore_waits_for_it_then_succeeds()
    {
        var (vm, repo, pointId) = await VmWithOnePointAsync();
        await using var _ = vm;
        using var __ = repo;
        var (restore, held) = await HoldRestoreAsync(repo, pointId);
        using var ___ = held;
        await vm.WriteAsGuestAsync("vda", 3 * MiB, 0x6b, MiB);

        var backup = Backupd("backup", "--domain", vm.Name, "--to", Repository, "--reader-wait", "5m", "--json");
        await Task.Delay(TimeSpan.FromSeconds(4));
        Assert.False(backup.IsCompleted, "the backup must wait while the restore reads the group");
        Assert.DoesNotContain(Directory.EnumerateFiles(vm.Directory), OverlayNaming.IsOverlay); // waiting before the snapshot
        held.Release();
        await restore; // the restore read a consistent point: its digest was checked before it returned
        var done = await backup.WaitAsync(TimeSpan.FromMinutes(5));

        Assert.True(done.ExitCode == 0, $"exited {done.ExitCode}: {done.Stderr}");
        Assert.Equal(2, repo.ListPoints(vm.Uuid).Count);
        await using var store = new CatalogStore(Database.ConnectionString);
        Assert.All(await store.ListRunsAsync(Guid.Parse(vm.Uuid), 10, CancellationToken.None), r => Assert.Equal(RunStates.Succeeded, r.State));
        Assert.True(await vm.GuestReadMatchesAsync("vda", 3 * MiB, MiB, 0x6b));
    }
}
