using System.Text.Json;
using Backupd.Integration.Fixtures;
using Backupd.Storage.Catalog;

namespace Backupd.Integration.Catalog;

/// <summary>The catalog commands as an admin runs them: the real backupd executable, a real PostgreSQL.</summary>
[Trait("Category", "Integration")]
public sealed class CatalogCliTests
{
    [Fact]
    public async Task Four_backupd_processes_migrating_an_empty_catalog_at_once_all_succeed_and_the_schema_is_exact()
    {
        await using var reference = await MigrationTests.FreshAsync();
        await CatalogMigrator.MigrateAsync(reference.ConnectionString, CancellationToken.None);
        await using var db = await MigrationTests.FreshAsync();
        using var config = new TempConfig(db.ConnectionString);

        var runs = await Task.WhenAll(Enumerable.Range(0, 4).Select(_ => BackupdProcess.RunAsync("--config", config.Path, "catalog", "migrate", "--json")));

        Assert.All(runs, r => Assert.True(r.ExitCode == 0, r.Stderr));
        var applied = runs.Select(r => JsonDocument.Parse(r.Stdout).RootElement.GetProperty("applied").GetArrayLength()).ToList();
        Assert.Equal(1, applied.Count(n => n > 0));
        Assert.Equal(await CatalogSchema.DescribeAsync(reference.ConnectionString), await CatalogSchema.DescribeAsync(db.ConnectionString));
    }

    [Fact]
    public async Task List_show_and_status_print_hostile_names_verbatim_with_documented_exit_codes()
    {
        await using var db = await MigrationTests.FreshAsync();
        using var config = new TempConfig(db.ConnectionString);
        Assert.Equal(2, (await BackupdProcess.RunAsync("--config", config.Path, "list")).ExitCode); // not migrated yet
        Assert.Equal(0, (await BackupdProcess.RunAsync("--config", config.Path, "catalog", "migrate")).ExitCode);
        const string hostile = "vm'; DROP TABLE restore_points; -- ünï";
        var uuid = Guid.NewGuid();
        await using (var store = new CatalogStore(db.ConnectionString))
        {
            var run = await store.StartRunAsync(new RunStart(uuid, hostile, "cli", "root"), ProcessIdentity.Current, CancellationToken.None);
            await store.CompleteRunAsync(run, new RunStats(10, 5), CatalogStoreTests.Point(uuid, hostile, "pt-" + hostile, DateTimeOffset.UtcNow), CancellationToken.None);
        }

        var list = await BackupdProcess.RunAsync("--config", config.Path, "list", "--domain", hostile, "--json");
        Assert.True(list.ExitCode == 0, list.Stderr);
        var point = Assert.Single(JsonDocument.Parse(list.Stdout).RootElement.EnumerateArray());
        Assert.Equal(hostile, point.GetProperty("domainName").GetString());
        Assert.Equal("pt-" + hostile, point.GetProperty("id").GetString());

        var show = await BackupdProcess.RunAsync("--config", config.Path, "show", "pt-" + hostile, "--json");
        Assert.True(show.ExitCode == 0, show.Stderr);
        Assert.Equal(3, JsonDocument.Parse(show.Stdout).RootElement.GetProperty("files").GetArrayLength());
        var table = await BackupdProcess.RunAsync("--config", config.Path, "list");
        Assert.Contains("DROP TABLE", table.Stdout, StringComparison.Ordinal);
        var status = await BackupdProcess.RunAsync("--config", config.Path, "status", "--json");
        Assert.Equal(hostile, Assert.Single(JsonDocument.Parse(status.Stdout).RootElement.GetProperty("lastPerDomain").EnumerateArray()).GetProperty("domainName").GetString());

        Assert.Equal(3, (await BackupdProcess.RunAsync("--config", config.Path, "show", "no-such-point")).ExitCode);
        Assert.Equal(3, (await BackupdProcess.RunAsync("--config", config.Path, "list", "--domain", "no-such-vm")).ExitCode);
        Assert.Equal(2, (await BackupdProcess.RunAsync("--config", config.Path, "list", "--since", "last tuesday")).ExitCode);
        Assert.Equal(CatalogSchema.ExpectedTables, await CatalogSchema.TablesAsync(db.ConnectionString));
    }

    [Fact]
    public async Task A_name_reused_by_a_new_domain_resolves_to_the_newest_with_a_note()
    {
        await using var db = await MigrationTests.FreshAsync();
        using var config = new TempConfig(db.ConnectionString);
        await CatalogMigrator.MigrateAsync(db.ConnectionString, CancellationToken.None);
        var (old, current) = (Guid.NewGuid(), Guid.NewGuid());
        await using (var store = new CatalogStore(db.ConnectionString))
        {
            foreach (var uuid in new[] { old, current })
            {
                var run = await store.StartRunAsync(new RunStart(uuid, "web", "cli", "root"), ProcessIdentity.Current, CancellationToken.None);
                await store.CompleteRunAsync(run, new RunStats(), CatalogStoreTests.Point(uuid, "web", $"pt-{uuid}", DateTimeOffset.UtcNow), CancellationToken.None);
                await Task.Delay(20);
            }
        }

        var list = await BackupdProcess.RunAsync("--config", config.Path, "list", "--domain", "web", "--json");

        Assert.True(list.ExitCode == 0, list.Stderr);
        Assert.Equal($"pt-{current}", Assert.Single(JsonDocument.Parse(list.Stdout).RootElement.EnumerateArray()).GetProperty("id").GetString());
        Assert.Contains(old.ToString(), list.Stderr, StringComparison.Ordinal);
        var byUuid = await BackupdProcess.RunAsync("--config", config.Path, "list", "--domain", old.ToString(), "--json");
        Assert.Equal($"pt-{old}", Assert.Single(JsonDocument.Parse(byUuid.Stdout).RootElement.EnumerateArray()).GetProperty("id").GetString());
    }
}
