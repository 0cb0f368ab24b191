using Backupd.Daemon.Configuration;
using Backupd.Daemon.Libvirt;
using Backupd.Daemon.Workflow;
using Backupd.Policies.Model;
using Microsoft.Extensions.Logging;

namespace Backupd.Daemon.Scheduling;

/// <summary>
/// Runs a scheduled backup with the live workflow, as `backupd backup --domain` does: recovery of
/// the domain first, then snapshot, copy into the policy's repository, commit and pivot. The copy
/// is time-boxed by the policy's copy timeout (the commit still runs when it expires). Catalog
/// records and retention prune are added when the catalog-recording runner is wired in.
/// </summary>
public sealed class WorkflowBackupRunner(DaemonConfig config, ILogger<WorkflowBackupRunner> logger) : IBackupRunner
{
    public async Task RunAsync(PolicyDefinition policy, string domain, CancellationToken ct)
    {
        var options = LiveBackupSettings.From(config).ToOptions() with { CommitReadyTimeout = policy.CommitTimeout };
        using var hypervisor = await Task.Run(() => LibvirtHypervisor.Open(policy.Connection ?? config.LibvirtUri), ct);
        var images = new QemuImg();
        var info = hypervisor.FindDomain(domain) ?? throw new InvalidOperationException($"domain '{domain}' disappeared before its backup started");
        var recovery = await new Recovery(hypervisor, images, options, logger).RecoverDomainAsync(info.Uuid, dryRun: false, ct);
        if (!recovery.AllResolved)
            throw new InvalidOperationException($"'{domain}' is still on an overlay from an earlier run and recovery could not fix it; see `backupd recover`");

        var disks = DomainXml.ParseDisks(hypervisor.GetXml(info.Uuid, DomainXmlKind.Live))
            .Select(d => d.Target).Where(policy.Disks.Matches).ToList();
        if (disks.Count == 0) throw new InvalidOperationException($"no disk of '{domain}' matches the policy's disks ({string.Join(", ", policy.Disks.Include)})");
        var request = new BackupRequest(domain, disks, [], policy.Quiesce switch
        {
            Policies.Model.QuiesceMode.Required => Workflow.QuiesceMode.Required,
            Policies.Model.QuiesceMode.Off => Workflow.QuiesceMode.Off,
            _ => Workflow.QuiesceMode.Preferred,
        });
        using var copyBox = CancellationTokenSource.CreateLinkedTokenSource(ct);
        copyBox.CancelAfter(policy.CopyTimeout);
        var workflow = new BackupWorkflow(hypervisor, images, BackupTargets.Open(policy.Repository), options, logger);
        var result = await workflow.RunAsync(request, copyBox.Token);
        if (result.Outcome != RunOutcome.Succeeded)
            throw new InvalidOperationException($"backup of '{domain}' {result.Outcome}: {result.Error}");
        logger.LogInformation("policy {Policy}: restore point {Point} of {Domain} in {Repository} ({Duration:0.0}s)",
            policy.Name, result.RestorePointId, domain, policy.Repository, result.Duration.TotalSeconds);

        // Retention after every backup, for this domain only (other domains are pruned after their own runs).
        var decisions = RetentionPruner.Prune(policy, new DirectoryPointStore(), DateTimeOffset.UtcNow, dryRun: false, onlyDomain: domain);
        foreach (var removed in decisions.Where(d => !d.Keep))
            logger.LogInformation("policy {Policy}: pruned restore point {Point} of {Domain}: {Reason}", policy.Name, removed.Point, domain, removed.Reason);
    }
}
