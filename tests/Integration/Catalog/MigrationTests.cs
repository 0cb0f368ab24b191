using Backupd.Integration.Fixtures;
using Backupd.Storage.Catalog;
using Dapper;
using Npgsql;

namespace Backupd.Integration.Catalog;

[Trait("Category", "Integration")]
public sealed class MigrationTests
{
    [Fact]
    public async Task Fresh_database_gets_every_table_and_one_version_row_per_script()
    {
        await using var db = await FreshAsync();
        var result = await CatalogMigrator.MigrateAsync(db.ConnectionString, CancellationToken.None);

        var scripts = Migration.LoadEmbedded();
        Assert.Equal(scripts.Select(m => m.Version), result.Applied);
        Assert.Equal(scripts[^1].Version, result.CurrentVersion);
        Assert.Equal(CatalogSchema.ExpectedTables, await CatalogSchema.TablesAsync(db.ConnectionString));
        await using var c = new NpgsqlConnection(db.ConnectionString);
        var rows = (await c.QueryAsync<(int Version, string Checksum)>("select version, checksum from catalog_schema_version order by version")).AsList();
        Assert.Equal(scripts.Select(m => (m.Version, m.Checksum)), rows);
    }

    [Fact]
    public async Task Repeated_migration_applies_nothing_and_leaves_the_schema_unchanged()
    {
        await using var db = await FreshAsync();
        await CatalogMigrator.MigrateAsync(db.ConnectionString, CancellationToken.None);
        var before = await CatalogSchema.DescribeAsync(db.ConnectionString);

        var again = await CatalogMigrator.MigrateAsync(db.ConnectionString, CancellationToken.None);
        var third = await CatalogMigrator.MigrateAsync(db.ConnectionString, CancellationToken.None);

        Assert.Empty(again.Applied);
        Assert.Empty(third.Applied);
        Assert.Equal(before, await CatalogSchema.DescribeAsync(db.ConnectionString));
    }

    [Fact]
    public async Task Four_connections_racing_on_an_empty_database_all_succeed_and_the_schema_is_exact()
    {
        await using var reference = await FreshAsync();
        await CatalogMigrator.MigrateAsync(reference.ConnectionString, CancellationToken.None);
        var expected = await CatalogSchema.DescribeAsync(reference.ConnectionString);

        await using var db = await FreshAsync();
        // Unpooled, so each racer is its own PostgreSQL session, as separate processes would be.
        var unpooled = new NpgsqlConnectionStringBuilder(db.ConnectionString) { Pooling = false }.ConnectionString;
        using var start = new ManualResetEventSlim();
        var racers = Enumerable.Range(0, 4).Select(_ => Task.Run(async () =>
        {
            start.Wait();
            return await CatalogMigrator.MigrateAsync(unpooled, CancellationToken.None);
        })).ToArray();
        start.Set();
        var results = await Task.WhenAll(racers);

        // Exactly one racer applied the scripts; the others found them applied.
        Assert.Single(results, r => r.Applied.Count > 0);
        Assert.All(results, r => Assert.Equal(Migration.LoadEmbedded()[^1].Version, r.CurrentVersion));
        Assert.Equal(expected, await CatalogSchema.DescribeAsync(db.ConnectionString));
        await using var c = new NpgsqlConnection(db.ConnectionString);
        Assert.Equal(Migration.LoadEmbedded().Count, await c.ExecuteScalarAsync<int>("select count(*) from catalog_schema_version"));
    }

    [Fact]
    public async Task A_failing_script_is_rolled_back_whole_and_not_recorded()
    {
        await using var db = await FreshAsync();
        var good = new Migration(1, "first", "create table first_table (id int)");
        var bad = new Migration(2, "broken", "create table half_done (id int); select * from no_such_table");

        var error = await Assert.ThrowsAsync<CatalogException>(() => CatalogMigrator.MigrateAsync(db.ConnectionString, [good, bad], CancellationToken.None));

        Assert.Contains("0002_broken", error.Message, StringComparison.Ordinal);
        Assert.Contains("no_such_table", error.Message, StringComparison.Ordinal);
        var tables = await CatalogSchema.TablesAsync(db.ConnectionString);
        Assert.Contains("first_table", tables);
        Assert.DoesNotContain("half_done", tables);
        await using var c = new NpgsqlConnection(db.ConnectionString);
        Assert.Equal([1], (await c.QueryAsync<int>("select version from catalog_schema_version")).AsList());
    }

    [Fact]
    public async Task A_script_edited_after_it_was_applied_is_refused()
    {
        await using var db = await FreshAsync();
        await CatalogMigrator.MigrateAsync(db.ConnectionString, [new Migration(1, "first", "create table t1 (id int)")], CancellationToken.None);

        var error = await Assert.ThrowsAsync<CatalogException>(() =>
            CatalogMigrator.MigrateAsync(db.ConnectionString, [new Migration(1, "first", "create table t1 (id bigint)")], CancellationToken.None));
        Assert.Contains("different script", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_database_newer_than_this_binary_is_refused()
    {
        await using var db = await FreshAsync();
        await CatalogMigrator.MigrateAsync(db.ConnectionString,
            [new Migration(1, "first", "create table t1 (id int)"), new Migration(2, "second", "create table t2 (id int)")], CancellationToken.None);

        var error = await Assert.ThrowsAsync<CatalogException>(() =>
            CatalogMigrator.MigrateAsync(db.ConnectionString, [new Migration(1, "first", "create table t1 (id int)")], CancellationToken.None));
        Assert.Contains("newer than this backupd", error.Message, StringComparison.Ordinal);
    }

    /// <summary>These tests each need an empty database of their own; the fixture's class-level one would be shared.</summary>
    internal static async Task<OwnedDatabase> FreshAsync()
    {
        var db = new PostgresDatabase();
        await db.InitializeAsync();
        return new OwnedDatabase(db);
    }

    internal sealed class OwnedDatabase(PostgresDatabase db) : IAsyncDisposable
    {
        public string ConnectionString => db.ConnectionString;
        public ValueTask DisposeAsync() => new(db.DisposeAsync());
    }
}
