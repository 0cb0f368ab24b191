using Backupd.Daemon.Configuration;
using Backupd.Daemon.Libvirt;
using Backupd.Daemon.Runs;
using Backupd.Daemon.Workflow;
using Backupd.Policies.Model;
using Backupd.Storage.Catalog;
using Backupd.Storage.Repository;
using Microsoft.Extensions.Logging;

namespace Backupd.Daemon.Scheduling;

/// <summary>
/// Runs a scheduled backup the way `backupd backup --domain` does (with a configuration): the catalog's domain
/// lock and run records around recovery + the live workflow into the policy's versioned
/// repository. The copy is time-boxed by the policy's copy timeout (the commit and pivot still
/// run when it expires). Afterwards: verify of the new point if the policy asks, then retention.
/// </summary>
public sealed class CatalogBackupRunner(DaemonConfig config, ILoggerFactory loggers, Observability.RunObservers? observers = null) : IBackupRunner, IRestorePointVerifier, IAsyncDisposable
{
    private readonly CatalogStore _catalog = new(config.CatalogConnectionString);
    private readonly ILogger _log = loggers.CreateLogger<CatalogBackupRunner>();

    public async Task RunAsync(PolicyDefinition policy, string domain, IReadOnlyCollection<PolicyDefinition> peers, CancellationToken ct)
    {
        var options = OptionsFor(policy, LiveBackupSettings.From(config).ToOptions());
        using var hypervisor = await Task.Run(() => LibvirtHypervisor.Open(policy.Connection ?? config.LibvirtUri), ct);
        var info = hypervisor.FindDomain(domain) ?? throw new DomainNotFoundException(domain);
        var workflow = new WorkflowDomainBackup(hypervisor, new QemuImg(), options, policy.Repository, loggers.CreateLogger("backupd.backup"))
        {
            IncludeDisks = DisksFor(policy, hypervisor.GetXml(info.Uuid, DomainXmlKind.Live)),
            BlockSize = policy.BlockSize,
            Quiesce = policy.Quiesce switch
            {
                Policies.Model.QuiesceMode.Required => Workflow.QuiesceMode.Required,
                Policies.Model.QuiesceMode.Off => Workflow.QuiesceMode.Off,
                _ => Workflow.QuiesceMode.Preferred,
            },
        };
        using var copyBox = CancellationTokenSource.CreateLinkedTokenSource(ct);
        copyBox.CancelAfter(policy.CopyTimeout);
        var runner = new BackupRunner(_catalog, workflow, loggers.CreateLogger<BackupRunner>())
        {
            CatalogRetry = config.CatalogRetry,
            Pending = new PendingRunRecords(config.StateDirectory),
        };
        // Metrics, notifications, the status page and STATUS= watch the run (Observability/IRunObserver).
        var watched = new Observability.ObservedRun(domain, policy.Name, "schedule", DateTimeOffset.UtcNow);
        observers?.Started(watched);
        BackupRunResult result;
        try { result = await runner.RunAsync(new Runs.BackupRequest(domain, "schedule", "backupd daemon", policy.Name), observers?.ProgressFor(watched), copyBox.Token); }
        catch (Exception e) { observers?.Finished(watched, Observability.RunEnd.From(e, null)); throw; }
        observers?.Finished(watched, new Observability.RunEnd(RunStates.Succeeded, result.Stats, result.Point.PointId, "done", null));
        _log.LogInformation("policy {Policy}: restore point {Point} of {Domain} in {Repository} (run {Run})",
            policy.Name, result.Point.PointId, domain, policy.Repository, result.RunId);

        if (policy.Verify.AfterBackup) await VerifyAsync(policy, result, ct);

        // Retention after every backup, for this domain only (other domains are pruned after their own runs).
        var decisions = await RetentionPruner.PruneAsync(policy, new RepositoryPointStore(_catalog), DateTimeOffset.UtcNow, dryRun: false, CancellationToken.None, onlyDomain: domain, peers);
        foreach (var removed in decisions.Where(d => !d.Keep))
            _log.LogInformation("policy {Policy}: pruned restore point {Point} of {Domain}: {Reason}", policy.Name, removed.Point, domain, removed.Reason);
        if (decisions.FirstOrDefault(d => d.Reason.StartsWith("not pruned:", StringComparison.Ordinal)) is { } shared)
            _log.LogError("policy {Policy}: {Reason}", policy.Name, shared.Reason);
    }

    /// <summary>The daemon's workflow options with the policy's commit time-box and bandwidth limits (null = unlimited).</summary>
    internal static WorkflowOptions OptionsFor(PolicyDefinition policy, WorkflowOptions daemon) => daemon with
    {
        CommitReadyTimeout = policy.CommitTimeout,
        CopyBandwidth = policy.CopyBandwidth,
        CommitBandwidth = policy.CommitBandwidth,
    };

    /// <summary>The policy's disk patterns as the exact targets the workflow takes; empty (every eligible disk) when the policy names none.</summary>
    internal static IReadOnlyList<string> DisksFor(PolicyDefinition policy, string liveXml)
    {
        if (policy.Disks == Policies.Selection.NameSelection.All) return [];
        var targets = DomainXml.ParseDisks(liveXml).Where(d => DiskSelection.Ineligible(d) is null).Select(d => d.Target).Where(policy.Disks.Matches).ToList();
        return targets.Count > 0
            ? targets
            : throw new BackupRefusedException(RefusalKind.BadRequest, $"no eligible disk matches the policy's disks ({string.Join(", ", policy.Disks.Include)})");
    }

    private async Task VerifyAsync(PolicyDefinition policy, BackupRunResult result, CancellationToken ct)
    {
        using var repo = BackupRepository.Open(policy.Repository);
        var report = await repo.VerifyAsync(result.Point.DomainUuid.ToString(), result.Point.PointId, null, ct);
        await _catalog.RecordEventAsync("verify", result.Point.DomainUuid, result.Point.PointId, report.Ok,
            report.Ok ? $"verified after backup: {report.VersionsChecked} file versions" : string.Join("; ", report.Problems), ProcessIdentity.Current, CancellationToken.None);
        observers?.Verified(result.Target.Name, policy.Name, result.Point.PointId, report.Ok, report.Ok ? "verified after backup" : string.Join("; ", report.Problems));
        if (report.Ok) _log.LogInformation("policy {Policy}: restore point {Point} verified", policy.Name, result.Point.PointId);
        else _log.LogError("policy {Policy}: restore point {Point} is damaged: {Problems}", policy.Name, result.Point.PointId, string.Join("; ", report.Problems));
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
                if (!report.Ok) _log.LogError("policy {Policy}: restore point {Point} of {Domain} is damaged: {Problems}", policy.Name, point.Id, domain, string.Join("; ", report.Problems));
                if (recorded.Contains(point.Id))
                    await _catalog.RecordEventAsync("verify", uuid, point.Id, report.Ok,
                        report.Ok ? $"scheduled verify: {report.VersionsChecked} file versions" : string.Join("; ", report.Problems), ProcessIdentity.Current, CancellationToken.None);
            }
        }
        return ok;
    }

    public ValueTask DisposeAsync() => _catalog.DisposeAsync();
}
