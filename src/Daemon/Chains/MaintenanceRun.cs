using System.Text.Json;
using Backupd.Daemon.Libvirt;
using Backupd.Daemon.Runs;
using Backupd.Storage.Catalog;
using Microsoft.Extensions.Logging;

namespace Backupd.Daemon.Chains;

/// <summary>
/// The locks and the record of one chain operation on one domain: the host run lock a backup takes (flock under
/// /run/lock/backupd) and, with a catalog, its advisory domain lock and a run of kind chain / move-disk whose progress
/// `backupd status` shows. A backup and a shorten of the same domain therefore exclude each other on every path.
/// </summary>
public sealed class MaintenanceRun : IAsyncDisposable
{
    private readonly Workflow.HostRunLock hostLock;
    private readonly Storage.Catalog.CatalogDomainLock? catalogLock;
    private readonly CatalogStore? store;
    private readonly RunProgressRecorder? recorder;
    private readonly ILogger logger;

    public long? RunId { get; }

    private MaintenanceRun(Workflow.HostRunLock hostLock, Storage.Catalog.CatalogDomainLock? catalogLock, CatalogStore? store, long? runId, ILogger logger)
    {
        this.hostLock = hostLock;
        this.catalogLock = catalogLock;
        this.store = store;
        RunId = runId;
        this.logger = logger;
        if (store is not null && runId is { } id) recorder = new RunProgressRecorder(store, id, null);
    }

    /// <param name="catalogConnection">null: no catalog configured (the host lock alone, nothing recorded).</param>
    /// <param name="catalogLockHeld">The caller (the daemon, right after a backup) already holds the domain's catalog lock.</param>
    public static async Task<MaintenanceRun> BeginAsync(string stateDirectory, string? catalogConnection, DomainInfo domain, string kind, string trigger, ILogger logger, CancellationToken ct,
        bool catalogLockHeld = false)
    {
        var hostLock = Workflow.HostRunLock.Acquire(stateDirectory, domain.Uuid, domain.Name);
        if (catalogConnection is null) return new MaintenanceRun(hostLock, null, null, null, logger);
        Storage.Catalog.CatalogDomainLock? catalogLock = null;
        CatalogStore? store = null;
        try
        {
            await CatalogMigrator.MigrateAsync(catalogConnection, ct);
            var self = ProcessIdentity.Current;
            var uuid = Guid.Parse(domain.Uuid);
            if (!catalogLockHeld) catalogLock = await Storage.Catalog.CatalogDomainLock.AcquireAsync(catalogConnection, uuid, domain.Name, self, ct);
            store = new CatalogStore(catalogConnection);
            var runId = await store.StartRunAsync(new RunStart(uuid, domain.Name, trigger, Environment.UserName, Kind: kind), self, ct);
            if (catalogLock is not null) await catalogLock.SetRunAsync(runId, ct);
            return new MaintenanceRun(hostLock, catalogLock, store, runId, logger);
        }
        catch
        {
            if (store is not null) await store.DisposeAsync();
            if (catalogLock is not null) await catalogLock.DisposeAsync();
            hostLock.Dispose();
            throw;
        }
    }

    public void Report(ChainProgress progress) => recorder?.Report(new RunProgress(progress.Step, progress.Done, progress.Total));

    public async Task SucceedAsync(object detail)
    {
        if (store is null || RunId is not { } id) return;
        try
        {
            if (recorder is not null) await recorder.DisposeAsync();
            await store.SucceedMaintenanceRunAsync(id, JsonSerializer.Serialize(detail, JsonSerializerOptions.Web), CancellationToken.None);
        }
        catch (Npgsql.NpgsqlException e) { ChainsLog.CatalogFailed(logger, e, id); }
    }

    public async Task FailAsync(string error)
    {
        if (store is null || RunId is not { } id) return;
        try
        {
            if (recorder is not null) await recorder.DisposeAsync();
            await store.FailRunAsync(id, RunStates.Failed, error, null, CancellationToken.None);
        }
        catch (Npgsql.NpgsqlException e) { ChainsLog.CatalogFailed(logger, e, id); }
    }

    public async ValueTask DisposeAsync()
    {
        if (recorder is not null) await recorder.DisposeAsync();
        if (store is not null) await store.DisposeAsync();
        if (catalogLock is not null) await catalogLock.DisposeAsync();
        hostLock.Dispose();
    }
}
