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
/// bandwidth and copy timeout). Afterwards: verify of the new point if the policy asks, then retention.
/// </summary>
public sealed class CatalogBackupRunner(DaemonConfig config, ILoggerFactory loggers, Observability.RunObservers? observers = null) : IBackupRunner, IRestorePointVerifier, IAsyncDisposable
{
    private readonly CatalogStore _catalog = new(config.CatalogConnectionString);
    private readonly ILogger _log = loggers.CreateLogger<CatalogBackupRunner>();
    private readonly BackupService _backups = new(loggers);

    public async Task RunAsync(PolicyDefinition policy, string domain, IReadOnlyCollection<PolicyDefinition> peers, CancellationToken ct)
    {
        // Metrics, notifications, the status page and STATUS= watch the run (Observability/IRunObserver).
        var watched = new Observability.ObservedRun(domain, policy.Name, "schedule", DateTimeOffset.UtcNow);
        observers?.Started(watched);
        BackupRun result;
        try { result = await _backups.RunAsync(BackupSpec.ForPolicy(config, policy, domain, CatalogRecording.For(_catalog, config)), null, ct, observers?.ProgressFor(watched)); }
        catch (Exception e) { observers?.Finished(watched, Observability.RunEnd.From(e, null)); throw; }
        observers?.Finished(watched, new Observability.RunEnd(RunStates.Succeeded, result.Stats, result.Point.PointId, "done", null));
        _log.PointRecorded(policy.Name, result.Point.PointId, domain, policy.Repository, result.CatalogRunId);

        if (policy.Verify.AfterBackup) await VerifyAsync(policy, result, ct);

        // Retention after every backup, for this domain only (other domains are pruned after their own runs).
        var decisions = await RetentionPruner.PruneAsync(policy, new RepositoryPointStore(_catalog), DateTimeOffset.UtcNow, dryRun: false, CancellationToken.None, onlyDomain: domain, peers);
        foreach (var removed in decisions.Where(d => !d.Keep))
            _log.PointPruned(policy.Name, removed.Point, domain, removed.Reason);
        if (decisions.FirstOrDefault(d => d.Reason.StartsWith("not pruned:", StringComparison.Ordinal)) is { } shared)
            _log.PruneRefusedShared(policy.Name, shared.Reason);
    }

    private async Task VerifyAsync(PolicyDefinition policy, BackupRun result, CancellationToken ct)
    {
        using var repo = BackupRepository.Open(policy.Repository);
        var report = await repo.VerifyAsync(result.Point.DomainUuid.ToString(), result.Point.PointId, null, ct);
        await _catalog.RecordEventAsync(EventKinds.Verify, result.Point.DomainUuid, result.Point.PointId, report.Ok,
            report.Ok ? $"verified after backup: {report.VersionsChecked} file versions" : string.Join("; ", report.Problems), ProcessIdentity.Current, CancellationToken.None);
        observers?.Verified(result.Domain.Name, policy.Name, result.Point.PointId, report.Ok, report.Ok ? "verified after backup" : string.Join("; ", report.Problems));
        if (report.Ok) _log.PointVerified(policy.Name, result.Point.PointId);
        else _log.NewPointDamaged(policy.Name, result.Point.PointId, string.Join("; ", report.Problems));
    }

    /// <summary>Verifies every point of every group of the repository whose domain the policy selects; one catalog event per point.</summary>
    public async Task<bool> VerifyAsync(PolicyDefinition policy, CancellationToken ct)
    {
        var ok = true;
        foreach (var (group, domain, points) in new RepositoryPointStore(_catalog).ListGroups(policy.Repository))
        {
            if (!policy.Domains.Matches(domain)) continue;
            using var repo = BackupRepository.Open(policy.Repository);
            var uuid = Guid.TryParse(group, out var g) ? g : (Guid?)null;
            var recorded = uuid is null ? [] : (await _catalog.ListPointsAsync(uuid, null, ct)).Select(p => p.Id).ToHashSet(StringComparer.Ordinal);
            foreach (var point in points)
            {
                var report = await repo.VerifyAsync(group, point.Id, null, ct);
                ok &= report.Ok;
                observers?.Verified(domain, policy.Name, point.Id, report.Ok, report.Ok ? "scheduled verify" : string.Join("; ", report.Problems));
                if (!report.Ok) _log.KeptPointDamaged(policy.Name, point.Id, domain, string.Join("; ", report.Problems));
                if (recorded.Contains(point.Id))
                    await _catalog.RecordEventAsync(EventKinds.Verify, uuid, point.Id, report.Ok,
                        report.Ok ? $"scheduled verify: {report.VersionsChecked} file versions" : string.Join("; ", report.Problems), ProcessIdentity.Current, CancellationToken.None);
            }
        }
        return ok;
    }

    public ValueTask DisposeAsync() => _catalog.DisposeAsync();
}
