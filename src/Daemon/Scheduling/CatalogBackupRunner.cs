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
/// bandwidth and copy timeout). Afterwards: verify of the new point if the policy asks, then retention (both from Maintenance/).
/// </summary>
public sealed class CatalogBackupRunner(DaemonConfig config, ILoggerFactory loggers) : IBackupRunner, IRestorePointVerifier, IAsyncDisposable
{
    private readonly CatalogStore _catalog = new(config.CatalogConnectionString);
    private readonly ILogger _log = loggers.CreateLogger<CatalogBackupRunner>();
    private readonly BackupService _backups = new(loggers);
    private PointVerifier Verifier => new(_catalog, _log);

    public async Task RunAsync(PolicyDefinition policy, string domain, IReadOnlyCollection<PolicyDefinition> peers, CancellationToken ct)
    {
        var result = await _backups.RunAsync(BackupSpec.ForPolicy(config, policy, domain, CatalogRecording.For(_catalog, config)), null, ct);
        _log.PointRecorded(policy.Name, result.Point.PointId, domain, policy.Repository, result.CatalogRunId);

        if (policy.Verify.AfterBackup) await Verifier.VerifyNewAsync(policy, result.Point.DomainUuid, result.Point.PointId, ct);

        // Retention after every backup, for this domain only (other domains are pruned after their own runs).
        var decisions = await RetentionPruner.PruneAsync(policy, new RepositoryPointStore(_catalog), DateTimeOffset.UtcNow, dryRun: false, CancellationToken.None, onlyDomain: domain, peers);
        foreach (var removed in decisions.Where(d => !d.Keep))
            _log.PointPruned(policy.Name, removed.Point, domain, removed.Reason);
        if (decisions.FirstOrDefault(d => d.Reason.StartsWith("not pruned:", StringComparison.Ordinal)) is { } shared)
            _log.PruneRefusedShared(policy.Name, shared.Reason);
    }

    /// <summary>Verifies every point the policy keeps (its `verify.schedule`); see <see cref="PointVerifier"/>.</summary>
    public Task<bool> VerifyAsync(PolicyDefinition policy, CancellationToken ct) => Verifier.VerifyAsync(policy, ct);

    public ValueTask DisposeAsync() => _catalog.DisposeAsync();
}
