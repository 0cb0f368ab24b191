using Backupd.Daemon.Configuration;
using Backupd.Daemon.Runs;
using Backupd.Storage.Catalog;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

namespace Backupd.Daemon.Hosting;

/// <summary>
/// At daemon start, before anything schedules a run: apply catalog migrations (safe with several
/// daemons starting at once), write the final records runs kept while the catalog was away, and mark
/// runs left `running` by dead processes as `interrupted`.
/// A catalog that cannot be reached or migrated stops the start-up with that error.
/// </summary>
public sealed class CatalogStartupService(DaemonConfig config, ILogger<CatalogStartupService> logger) : IHostedService
{
    public async Task StartAsync(CancellationToken cancellationToken)
    {
        var result = await CatalogMigrator.MigrateAsync(config.CatalogConnectionString, cancellationToken);
        if (result.Applied.Count > 0)
            logger.CatalogMigrated(string.Join(",", result.Applied), result.CurrentVersion);
        await using var store = new CatalogStore(config.CatalogConnectionString);
        // Runs whose process lost the catalog and ended: their kept records (points included) first, then the rest become interrupted.
        await RunRecordFinisher.FinishLeftOversAsync(store, new PendingRunRecords(config.StateDirectory), ProcessIdentity.Current, null, logger, cancellationToken);
    }

    public Task StopAsync(CancellationToken cancellationToken) => Task.CompletedTask;
}
