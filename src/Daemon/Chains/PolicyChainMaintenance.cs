using Backupd.Daemon.Libvirt;
using Backupd.Policies.Model;
using Microsoft.Extensions.Logging;

namespace Backupd.Daemon.Chains;

/// <summary>
/// A policy's `chains: {max-depth: N, method: M}` after each backup of a domain: every disk deeper than N is shortened
/// to N with M, under the domain's locks (the daemon's backup run still holds the catalog lock), recorded as a run of
/// kind chain. A refusal (a shared template under a commit) is logged with its reason and the disk left alone.
/// </summary>
public static class PolicyChainMaintenance
{
    public static async Task RunAsync(IHypervisor hypervisor, string domainUuid, ChainMaintenance chains, string stateDirectory, string? catalogConnection, ILogger logger, CancellationToken ct)
    {
        var domain = hypervisor.FindDomain(domainUuid);
        if (domain is null) return;
        var method = chains.Method == "pull" ? ShortenMethod.Pull : ShortenMethod.Commit;
        var usage = await ImageUsage.ScanAsync(hypervisor, ct);
        var planned = new List<(DomainDisk Disk, DiskChain Chain, ChainPlan Plan)>();
        foreach (var disk in ChainInspector.ChainDisks(hypervisor, domain))
        {
            var chain = await ChainInspector.ReadDiskAsync(domain, disk, usage, chains.MaxDepth, ct);
            if (chain.Depth <= chains.MaxDepth) continue;
            try { planned.Add((disk, chain, ChainPlanner.Plan(chain, method, chains.MaxDepth, null, domain.Uuid))); }
            catch (ChainRefusedException e) { ChainsLog.PolicyRefused(logger, domain.Name, disk.Target, e.Message); }
        }
        if (planned.Count == 0) return;
        await using var run = await MaintenanceRun.BeginAsync(stateDirectory, catalogConnection, domain, Storage.Catalog.RunKinds.Chain, "policy", logger, ct, catalogLockHeld: true);
        var shortener = new ChainShortener(hypervisor, new ChainJournal(stateDirectory), logger);
        var results = new List<ShortenResult>();
        try
        {
            foreach (var (disk, chain, plan) in planned)
                results.Add(await shortener.RunAsync(domain, disk, chain, plan, new ShortenOptions(), run.Report, ct));
        }
        catch (Exception e)
        {
            await run.FailAsync(e.Message);
            throw;
        }
        await run.SucceedAsync(new { domain = domain.Name, disks = results });
    }
}
