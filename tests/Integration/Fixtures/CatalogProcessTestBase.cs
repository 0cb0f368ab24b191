using Backupd.Storage.Catalog;

namespace Backupd.Integration.Fixtures;

/// <summary>
/// What the catalog tests that run `backupd` as a process share: a migrated database per class, a configuration
/// pointing at it, a repository path, and `backupd --config CONFIG ...`.
/// </summary>
public abstract class CatalogProcessTestBase(PostgresDatabase database) : IClassFixture<PostgresDatabase>, IAsyncLifetime, IDisposable
{
    protected const long MiB = TestVm.MiB;

    protected PostgresDatabase Database => database;

    protected TempConfig Config { get; } = new(database.ConnectionString);

    protected string Repository => Path.Combine(Config.Directory, "repo");

    public Task InitializeAsync() => CatalogMigrator.MigrateAsync(database.ConnectionString, CancellationToken.None);

    public Task DisposeAsync() => Task.CompletedTask;

    public void Dispose()
    {
        Config.Dispose();
        GC.SuppressFinalize(this);
    }

    protected Task<(int ExitCode, string Stdout, string Stderr)> Backupd(params string[] args) => Backupd(null, args);

    protected Task<(int ExitCode, string Stdout, string Stderr)> Backupd(IDictionary<string, string>? env, params string[] args) =>
        BackupdProcess.RunAsync(env, ["--config", Config.Path, .. args]);
}
