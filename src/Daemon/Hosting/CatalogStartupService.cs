using Backupd.Daemon.Configuration;
using Backupd.Storage.Catalog;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

namespace Backupd.Daemon.Hosting;

/// <summary>
/// At daemon start, before anything schedules a run: apply catalog migrations (safe with several
/// daemons starting at once) and mark runs left `running` by dead processes as `interrupted`.
/// A catalog that cannot be reached or migrated stops the start-up with that error.
/// </summary>
public sealed class CatalogStartupService(DaemonConfig config, ILogger<CatalogStartupService> logger) : IHostedService
{
    public async Task StartAsync(CancellationToken cancellationToken)
    {
        var result = await CatalogMigrator.MigrateAsync(config.CatalogConnectionString, cancellationToken);
        if (result.Applied.Count > 0)
            logger.LogInformation("catalog: applied migrations {Versions}; schema version {Version}", string.Join(",", result.Applied), result.CurrentVersion);
        await using var store = new CatalogStore(config.CatalogConnectionString);
        var marked = await store.MarkInterruptedRunsAsync(ProcessIdentity.Current, cancellationToken);
        if (marked.Count > 0)
            logger.LogWarning("catalog: {Count} run(s) left running by processes that no longer exist are now interrupted: {Runs}", marked.Count, string.Join(",", marked));
    }

    public Task StopAsync(CancellationToken cancellationToken) => Task.CompletedTask;
}
