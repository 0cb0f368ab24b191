using Backupd.Daemon.Configuration;
using Backupd.Daemon.Libvirt;
using Backupd.Daemon.Maintenance;
using Backupd.Daemon.Runs;
using Backupd.Daemon.Workflow;
using Backupd.Policies.Model;
using Backupd.Storage.Catalog;
using Backupd.Storage.Repository;
using Microsoft.Extensions.Logging;

namespace Backupd.Daemon.Scheduling;

/// <summary>
/// Runs a scheduled backup through <see cref="BackupService"/>, as `backupd backup --domain` does, with the spec
/// <see cref="BackupSpec.ForPolicy"/> builds (catalog lock and records, the policy's repository, disks, quiesce,
/// bandwidth and copy timeout). Afterwards: verify of the new point if the policy asks, its copies (Copies/), then retention (Maintenance/).
/// </summary>
public sealed class CatalogBackupRunner(DaemonConfig config, ILoggerFactory loggers, Observability.RunObservers? observers = null) : IBackupRunner, IRestorePointVerifier, IRestoreDriller, IAsyncDisposable
{
    private readonly CatalogStore _catalog = new(config.CatalogConnectionString);
    private readonly ILogger _log = loggers.CreateLogger<CatalogBackupRunner>();
    private readonly BackupService _backups = new(loggers);
    private PointVerifier Verifier => new(_catalog, _log) { Observers = observers };

    public async Task RunAsync(PolicyDefinition policy, string domain, IReadOnlyCollection<PolicyDefinition> peers, CancellationToken ct)
    {
        var spec = BackupSpec.ForPolicy(config, policy, domain, CatalogRecording.For(_catalog, config)) with
        {
            AfterBackupWhileLocked = policy.Chains is { } chains
                ? (hypervisor, run, token) => Chains.PolicyChainMaintenance.RunAsync(hypervisor, run.Domain.Uuid.ToString(), chains, config.StateDirectory, config.CatalogConnectionString, loggers.CreateLogger("backupd.chain"), token)
                : null,
        };
        // Metrics, notifications, the status page and STATUS= watch the run (Observability/IRunObserver).
        var watched = new Observability.ObservedRun(domain, policy.Name, "schedule", DateTimeOffset.UtcNow);
        observers?.Started(watched);
        BackupRun result;
        try { result = await _backups.RunAsync(spec, null, ct, observers?.ProgressFor(watched)); }
        catch (Exception e) { observers?.Finished(watched, Observability.RunEnd.From(e, null)); throw; }
        observers?.Finished(watched, new Observability.RunEnd(RunStates.Succeeded, result.Stats, result.Point.PointId, "done", null));
        _log.PointRecorded(policy.Name, result.Point.PointId, domain, policy.Repository, result.CatalogRunId);

        if (policy.Verify.AfterBackup) await Verifier.VerifyNewAsync(policy, result.Point.DomainUuid, result.Domain.Name, result.Point.PointId, ct);

        // Copies after the lock is released, before retention (which keeps the newest point anyway); see Copies/PolicyCopies.
        if (policy.Copies.Count > 0)
        {
            await new Copies.PolicyCopies(_catalog, loggers.CreateLogger("backupd.copy")).RunAsync(policy, result.Point.PointId, result.Point.Repository,
                new Copies.CopiedPoint(result.Point.DomainUuid, result.Point.DomainName, result.Point.CreatedAt), ct);
        }

        // Retention after every backup, for this domain only (other domains are pruned after their own runs).
        var decisions = await RetentionPruner.PruneAsync(policy, new RepositoryPointStore(_catalog), DateTimeOffset.UtcNow, dryRun: false, CancellationToken.None, onlyDomain: domain, peers);
        foreach (var removed in decisions.Where(d => !d.Keep))
            _log.PointPruned(policy.Name, removed.Point, domain, removed.Reason);
        if (decisions.FirstOrDefault(d => d.Reason.StartsWith("not pruned:", StringComparison.Ordinal)) is { } shared)
            _log.PruneRefusedShared(policy.Name, shared.Reason);
    }

    /// <summary>Verifies every point the policy keeps (its `verify.schedule`); see <see cref="PointVerifier"/>.</summary>
    public Task<bool> VerifyAsync(PolicyDefinition policy, CancellationToken ct) => Verifier.VerifyAsync(policy, ct);

    /// <summary>The policy's drills (`drill:`): the newest point of each selected domain in its repository (Drills/DrillService).</summary>
    public async Task<bool> DrillAsync(PolicyDefinition policy, CancellationToken ct)
    {
        var drill = policy.Drill!;
        var service = new Drills.DrillService(config.StateDirectory, config.CatalogConnectionString, config.LibvirtUri, loggers.CreateLogger("backupd.drill"));
        var options = new Drills.DrillOptions(drill.Timeout, drill.Check, drill.TrustSavedXml, Drills.DrillOptions.DefaultScratchRoot);
        var ok = true;
        foreach (var (group, domain, points) in new RepositoryPointStore(_catalog).ListGroups(policy.Repository))
        {
            if (!policy.Domains.Matches(domain) || !Guid.TryParse(group, out var uuid)) continue;
            var newest = (await _catalog.ListPointsAsync(uuid, null, ct)).FirstOrDefault(p => p.Repository == policy.Repository);
            if (newest is null) continue;
            try
            {
                var result = await service.RunAsync(_catalog, uuid, domain, newest.Id, options, "schedule", ct);
                ok &= result.Passed;
            }
            catch (Cli.CliFailureException e)
            {
                _log.ScheduledDrillNotRun(policy.Name, domain, e.Message);
                ok = false;
            }
            catch (DomainBusyException e)
            {
                _log.ScheduledDrillNotRun(policy.Name, domain, e.Message);
                ok = false;
            }
        }
        return ok;
    }

    public ValueTask DisposeAsync() => _catalog.DisposeAsync();
}
