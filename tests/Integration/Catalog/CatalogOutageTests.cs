using System.Text.Json;
using Backupd.Daemon.Workflow;
using Backupd.Integration.Fixtures;
using Backupd.Storage.Catalog;

namespace Backupd.Integration.Catalog;

/// <summary>
/// The catalog goes away in the middle of a live backup (a TCP relay between backupd and PostgreSQL is cut, the shared
/// server keeps running): the VM and the repository do not care, and the run gets its final state (and its point) into
/// the catalog once it is back: by the same process while it retries, or by `backupd recover` after it gave up.
/// </summary>
[Trait("Category", "Integration")]
public sealed class CatalogOutageTests(PostgresDatabase database) : IClassFixture<PostgresDatabase>, IAsyncLifetime, IDisposable
{
    private readonly PostgresProxy proxy = new(database.ConnectionString);
    private TempConfig? config;
    private CatalogStore? store;

    private TempConfig Config => config!;
    private CatalogStore Store => store!;
    private string Repository => Path.Combine(Config.Directory, "repo");
    private string PendingDirectory => Path.Combine(Config.StateDirectory, "catalog-pending");

    public async Task InitializeAsync()
    {
        await CatalogMigrator.MigrateAsync(database.ConnectionString, CancellationToken.None);
        store = new CatalogStore(database.ConnectionString); // the test's own view, never through the relay
    }

    public async Task DisposeAsync()
    {
        if (store is not null) await store.DisposeAsync();
    }

    public void Dispose()
    {
        proxy.Dispose();
        config?.Dispose();
    }

    private IEnumerable<string> PendingFiles => Directory.Exists(PendingDirectory) ? Directory.EnumerateFiles(PendingDirectory, "*.json") : [];

    [Fact]
    public async Task Catalog_cut_mid_copy_and_back_while_the_run_retries_the_same_process_records_the_run_and_its_point()
    {
        config = new TempConfig(proxy.ConnectionString, "catalog-retry: 3m");
        await using var vm = await SlowCommitRun.CreateVmAsync();
        var uuid = Guid.Parse(vm.Uuid);
        using var run = await SlowCommitRun.StartAsync(vm, Config.Path, Repository, Store);

        proxy.Stop(); // mid-copy: the lock session, the progress writes and every new connection fail from here on
        await Eventually.WaitUntilAsync(() => PendingFiles.Any() || run.Process.HasExited, TimeSpan.FromSeconds(120), "the run keeping its unrecorded end", run.Output);
        Assert.False(run.Process.HasExited, $"the backup gave up instead of retrying:\n{run.AllOutput}");
        Assert.Equal(RunStates.Running, (await Store.ListRunsAsync(uuid, 10, CancellationToken.None)).Single().State);
        proxy.Start();

        Assert.True(await run.ExitCodeAsync() == 0, run.AllOutput);
        var recorded = Assert.Single(await Store.ListRunsAsync(uuid, 10, CancellationToken.None));
        var point = Assert.Single(await Store.ListPointsAsync(uuid, null, CancellationToken.None));
        Assert.Equal((RunStates.Succeeded, point.Id, (long?)recorded.Id), (recorded.State, recorded.RestorePointId, point.RunId));
        Assert.Contains("the catalog is back", run.AllOutput, StringComparison.Ordinal);
        Assert.Empty(PendingFiles);
        Assert.Equal(vm.Disk("vda").Path, await vm.ActiveSourceAsync("vda"));
        Assert.True(await vm.GuestReadMatchesAsync("vda", SlowCommitRun.GuestOffset, SlowCommitRun.GuestBytes, SlowCommitRun.GuestPattern));
    }

    [Fact]
    public async Task Catalog_cut_after_the_copy_and_down_past_the_retries_names_catalog_rebuild_and_recover_records_the_point_when_it_is_back()
    {
        config = new TempConfig(proxy.ConnectionString, "catalog-retry: 3s");
        await using var vm = await SlowCommitRun.CreateVmAsync();
        var uuid = Guid.Parse(vm.Uuid);
        using var run = await SlowCommitRun.StartAsync(vm, Config.Path, Repository, Store);
        var committing = await run.WaitForAsync(r => r is { Step: "commit" }, "the commit step");

        proxy.Stop(); // the repository point is durable; the overlay is being merged back
        Assert.Equal(1, await run.ExitCodeAsync());

        var output = run.AllOutput;
        Assert.Contains("is durable in", output, StringComparison.Ordinal);
        Assert.Contains($"`backupd catalog rebuild --repository {Repository}`", output, StringComparison.Ordinal);
        Assert.Contains(PendingDirectory, output, StringComparison.Ordinal);
        Assert.Single(PendingFiles);
        Assert.Equal(RunStates.Running, (await Store.GetRunAsync(committing.Id, CancellationToken.None))!.State);
        Assert.Empty(await Store.ListPointsAsync(uuid, null, CancellationToken.None));
        Assert.Equal(vm.Disk("vda").Path, await vm.ActiveSourceAsync("vda")); // the guest never depended on the catalog
        Assert.DoesNotContain(Directory.EnumerateFiles(vm.Directory), OverlayNaming.IsOverlay);

        // While the catalog is still away, recover says so and keeps the record.
        var early = await BackupdProcess.RunAsync("--config", Config.Path, "recover", "--domain", vm.Name);
        Assert.True(early.ExitCode == 0, early.Stderr);
        Assert.Contains("catalog rebuild", early.Stderr, StringComparison.Ordinal);
        Assert.Single(PendingFiles);

        proxy.Start();
        var recover = await BackupdProcess.RunAsync("--config", Config.Path, "recover", "--domain", vm.Name, "--json");
        Assert.True(recover.ExitCode == 0, recover.Stderr);

        var recorded = JsonDocument.Parse(recover.Stdout).RootElement.GetProperty("catalog").GetProperty("recorded").EnumerateArray().Single();
        var point = Assert.Single(await Store.ListPointsAsync(uuid, null, CancellationToken.None));
        Assert.Equal((committing.Id, point.Id), (recorded.GetProperty("runId").GetInt64(), recorded.GetProperty("pointId").GetString()));
        var finished = (await Store.GetRunAsync(committing.Id, CancellationToken.None))!;
        Assert.Equal((RunStates.Succeeded, point.Id), (finished.State, finished.RestorePointId));
        Assert.Empty(PendingFiles);
        var status = JsonDocument.Parse((await BackupdProcess.RunAsync("--config", Config.Path, "status", "--json")).Stdout).RootElement;
        Assert.Empty(status.GetProperty("running").EnumerateArray());
    }
}
