using System.Globalization;
using Backupd.Daemon.Workflow;
using Backupd.Integration.Fixtures;
using Backupd.Storage.Catalog;

namespace Backupd.Integration.Catalog;

/// <summary>
/// A catalog run stopped by a signal in its copy step: the overlay is merged back as always, and the
/// catalog calls the run what it was (`interrupted`, the stop's word), not `failed`, with no restore point.
/// </summary>
public sealed class InterruptedRunTests(PostgresDatabase database) : IClassFixture<PostgresDatabase>, IAsyncLifetime, IDisposable
{
    private const long MiB = TestVm.MiB;
    private readonly TempConfig _config = new(database.ConnectionString);

    public Task InitializeAsync() => CatalogMigrator.MigrateAsync(database.ConnectionString, CancellationToken.None);

    public Task DisposeAsync() => Task.CompletedTask;

    public void Dispose() => _config.Dispose();

    [Fact]
    public async Task Sigterm_in_the_copy_records_the_run_interrupted_without_a_point_and_the_vm_on_its_base()
    {
        // 64 MiB of data at 4 MiB/s: the copy lasts ~16 s, long enough to be caught in it.
        await using var vm = await TestVm.CreateAsync(new DiskSpec("vda", SizeBytes: 64 * MiB, FillPattern: null));
        await TestVm.WritePatternAsync(vm.Disk("vda").Path, "qcow2", 0, 64 * MiB, 0x5a);
        await vm.StartAsync();
        var uuid = Guid.Parse(vm.Uuid);
        await using var store = new CatalogStore(database.ConnectionString);
        using var process = BackupdProcess.StartCollecting(null, out var output,
            "--config", _config.Path, "backup", "--domain", vm.Name, "--to", Path.Combine(_config.Directory, "repo"), "--bandwidth", "4MiB/s", "--json");

        var deadline = DateTime.UtcNow.AddSeconds(90);
        while ((await store.ListRunsAsync(uuid, 10, CancellationToken.None)).SingleOrDefault() is not { Step: "copy", ProgressBytes: > 0 } && !process.HasExited)
        {
            Assert.True(DateTime.UtcNow < deadline, $"the run did not reach its copy step in 90 s; output:\n{string.Join('\n', output)}");
            await Task.Delay(100);
        }
        Assert.False(process.HasExited, $"the backup ended before the signal; output:\n{string.Join('\n', output)}");
        await Tools.RunAsync("kill", "-TERM", process.Id.ToString(CultureInfo.InvariantCulture));
        await process.WaitForExitAsync();

        Assert.Equal(1, process.ExitCode);
        var run = Assert.Single(await store.ListRunsAsync(uuid, 10, CancellationToken.None));
        Assert.Equal((RunStates.Interrupted, (string?)null), (run.State, run.RestorePointId));
        Assert.Contains("canceled", run.Error, StringComparison.Ordinal);
        Assert.Empty(await store.ListPointsAsync(uuid, null, CancellationToken.None));
        Assert.Equal(vm.Disk("vda").Path, await vm.ActiveSourceAsync("vda"));
        Assert.DoesNotContain(Directory.EnumerateFiles(vm.Directory), OverlayNaming.IsOverlay);
        Assert.Equal("running", await vm.StateAsync());
    }
}
