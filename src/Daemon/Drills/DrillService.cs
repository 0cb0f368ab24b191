using System.Text.Json;
using Backupd.Daemon.Chains;
using Backupd.Daemon.Cli;
using Backupd.Daemon.Libvirt;
using Backupd.Daemon.Restore;
using Backupd.Storage.Catalog;
using Backupd.Storage.Repository;
using Microsoft.Extensions.Logging;

namespace Backupd.Daemon.Drills;

/// <summary>How to drill, from the command line or a policy's drill: key.</summary>
public sealed record DrillOptions(TimeSpan Timeout, string? Check, bool TrustSavedXml, string ScratchRoot)
{
    public static readonly TimeSpan DefaultTimeout = TimeSpan.FromMinutes(5);

    /// <summary>Under libvirt's image directory: QEMU's user can reach files there (unlike a 0700 state directory).</summary>
    public const string DefaultScratchRoot = "/var/lib/libvirt/images/backupd-drills";
}

/// <summary>
/// One drill with its record: the domain's locks and a run of kind drill naming the point (so `status` shows it
/// running, and no backup of the domain changes the point's mirror meanwhile), the drill itself, then the run
/// finished with the result, the RTO and what the drill did in runs.detail.
/// </summary>
public sealed class DrillService(string stateDirectory, string catalogConnection, string libvirtUri, ILogger logger)
{
    public async Task<DrillResult> RunAsync(CatalogStore store, Guid domainUuid, string domainName, string pointId, DrillOptions options, string trigger, CancellationToken ct)
    {
        var detail = await store.GetPointAsync(pointId, ct) ?? throw new CliFailureException(FailureKind.NotFound, $"no restore point '{pointId}' in the catalog");
        var plan = RestorePlan.Build(pointId, detail.Files, null);
        if (plan.Count == 0) throw new CliFailureException(FailureKind.NotFound, $"restore point {pointId} has no disk files");
        if (!BackupRepository.Exists(detail.Point.Repository))
            throw new CliFailureException(FailureKind.NotFound, $"restore point {pointId} lives in {detail.Point.Repository}, which is not a backupd repository (any more)");
        var source = new DomainInfo(domainUuid.ToString(), domainName, DomainRunState.NoState, null, true);
        await using var run = await MaintenanceRun.BeginAsync(stateDirectory, catalogConnection, source, RunKinds.Drill, trigger, logger, ct);
        if (run.RunId is { } id) await store.SetRunPointAsync(id, pointId, ct);
        DrillResult result;
        try
        {
            using var repository = BackupRepository.Open(detail.Point.Repository);
            using var hypervisor = LibvirtHypervisor.Open(libvirtUri);
            var request = new DrillRequest(domainUuid, domainName, pointId, detail.Point.Repository, detail.DomainXml, plan, options.Timeout, options.Check, options.TrustSavedXml, options.ScratchRoot);
            run.Report(new ChainProgress("drill", 0, 1));
            result = await new DrillRunner(hypervisor, new DrillJournal(stateDirectory), logger).RunAsync(request, repository, null, ct);
        }
        catch (Exception e) when (e is DrillException or LibvirtException or RepositoryException)
        {
            await RecordAsync(store, run.RunId, false, null, e.Message, new { pointId, error = e.Message });
            throw new CliFailureException(FailureKind.Failed, $"drill of {domainName} point {pointId}: {e.Message}");
        }
        await RecordAsync(store, run.RunId, result.Passed, result.Rto, result.Failure, result);
        return result;
    }

    private async Task RecordAsync(CatalogStore store, long? runId, bool ok, TimeSpan? rto, string? error, object detail)
    {
        if (runId is not { } id) return;
        try { await store.FinishRestoreRunAsync(id, ok, rto, error, JsonSerializer.Serialize(detail, JsonSerializerOptions.Web), CancellationToken.None); }
        catch (Npgsql.NpgsqlException e) { DrillsLog.DrillNotRecorded(logger, id.ToString(System.Globalization.CultureInfo.InvariantCulture), e); }
    }
}
