using Backupd.Daemon.Configuration;
using Backupd.Daemon.Libvirt;
using Backupd.Daemon.Scheduling;
using Backupd.Daemon.Workflow;
using Backupd.Policies.Model;
using Backupd.Policies.Retention;
using Backupd.Storage.Catalog;
using Backupd.Storage.Repository;
using Microsoft.Extensions.Logging;

namespace Backupd.Daemon.Runs;

/// <summary>
/// The scheduler's <see cref="IBackupRunner"/> with catalog records: the policy's disks and quiesce
/// mode, the live workflow through <see cref="BackupRunner"/> (domain lock, run row, restore point
/// after the repository commit), then the policy's retention (repository first, then catalog, each
/// removal recorded as a retention event) and, if asked, a verify of the new point (recorded).
/// A domain already being backed up elsewhere is skipped with a log line, not an error.
/// </summary>
public sealed class PolicyBackupRunner(DaemonConfig config, ILoggerFactory loggers) : IBackupRunner
{
    private readonly ILogger _log = loggers.CreateLogger<PolicyBackupRunner>();

    public async Task RunAsync(PolicyDefinition policy, string domain, CancellationToken ct)
    {
        var options = LiveBackupSettings.From(config).ToOptions() with { CommitReadyTimeout = policy.CommitTimeout };
        using var hypervisor = await Task.Run(() => LibvirtHypervisor.Open(policy.Connection ?? config.LibvirtUri), ct);
        var info = hypervisor.FindDomain(domain) ?? throw new DomainNotFoundException(domain);
        var disks = DomainXml.ParseDisks(hypervisor.GetXml(info.Uuid, DomainXmlKind.Live)).Select(d => d.Target).Where(policy.Disks.Matches).ToList();
        if (disks.Count == 0)
            throw new InvalidOperationException($"no disk of '{domain}' matches the policy's disks ({string.Join(", ", policy.Disks.Include)})");

        await using var store = new CatalogStore(config.CatalogConnectionString);
        var workflow = new WorkflowDomainBackup(hypervisor, new QemuImg(), options, policy.Repository, loggers.CreateLogger("backupd.backup"))
        {
            IncludeDisks = disks,
            Quiesce = policy.Quiesce switch
            {
                Policies.Model.QuiesceMode.Required => Workflow.QuiesceMode.Required,
                Policies.Model.QuiesceMode.Off => Workflow.QuiesceMode.Off,
                _ => Workflow.QuiesceMode.Preferred,
            },
        };
        using var copyBox = CancellationTokenSource.CreateLinkedTokenSource(ct);
        copyBox.CancelAfter(policy.CopyTimeout);
        BackupRunResult result;
        try
        {
            result = await new BackupRunner(store, workflow, loggers.CreateLogger<BackupRunner>())
                .RunAsync(new BackupRequest(info.Uuid, "schedule", $"policy {policy.Name}", policy.Name), null, copyBox.Token);
        }
        catch (DomainBusyException e)
        {
            _log.LogWarning("policy {Policy}: skipped {Domain}: {Reason}", policy.Name, domain, e.Message);
            return;
        }
        _log.LogInformation("policy {Policy}: restore point {Point} of {Domain} recorded (run {Run})", policy.Name, result.Point.PointId, domain, result.RunId);

        await ApplyRetentionAsync(store, policy, result.Target, ct);
        if (policy.Verify.AfterBackup)
            await VerifyAsync(store, policy, result, ct);
    }

    /// <summary>Removes what the policy's retention no longer keeps, among this domain's points in the policy's repository.</summary>
    public async Task ApplyRetentionAsync(CatalogStore store, PolicyDefinition policy, BackupTarget target, CancellationToken ct)
    {
        if (policy.Retention.KeepsEverything) return;
        using var repository = BackupRepository.Open(policy.Repository);
        var points = repository.ListPoints(target.Uuid.ToString());
        var remove = RetentionPlanner.ToRemove(points.Select(p => new RetentionPoint(p.PointId, p.CreatedAt)), policy.Retention, DateTimeOffset.UtcNow, policy.Schedule.TimeZone);
        foreach (var point in remove)
        {
            // Repository first: a point gone from the catalog but still in the repository is found again by rebuild; the reverse would list a point that cannot be restored.
            repository.DeletePoint(point.Id);
            await store.DeletePointAsync(point.Id, ct);
            await store.RecordEventAsync(EventKinds.Retention, target.Uuid, point.Id, true,
                $"removed by policy {policy.Name} ({policy.Retention}); taken {point.Time.UtcDateTime:yyyy-MM-dd HH:mm:ss}Z", ProcessIdentity.Current, ct);
            _log.LogInformation("policy {Policy}: retention removed restore point {Point} of {Domain}", policy.Name, point.Id, target.Name);
        }
    }

    private static async Task VerifyAsync(CatalogStore store, PolicyDefinition policy, BackupRunResult result, CancellationToken ct)
    {
        using var repository = BackupRepository.Open(policy.Repository);
        var report = await repository.VerifyAsync(result.Target.Uuid.ToString(), result.Point.PointId, null, ct);
        var detail = report.Ok ? $"{report.VersionsChecked} file version(s), {report.BytesChecked} bytes verified after backup" : report.Problems[0];
        await store.RecordEventAsync(EventKinds.Verify, result.Target.Uuid, result.Point.PointId, report.Ok, detail, ProcessIdentity.Current, ct);
        if (!report.Ok)
            throw new InvalidOperationException($"policy {policy.Name}: restore point {result.Point.PointId} of {result.Target.Name} failed verification: {detail}");
    }
}
