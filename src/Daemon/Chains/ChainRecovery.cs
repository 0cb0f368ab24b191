using Backupd.Daemon.Libvirt;
using Backupd.Daemon.Workflow;
using Microsoft.Extensions.Logging;

namespace Backupd.Daemon.Chains;

/// <summary>
/// `backupd recover` for chain operations that did not finish (open entries in STATE/chains). What libvirt shows
/// decides, the journal says what was planned; every entry ends finished, pivoted or aborted, never half:
/// <list type="bullet">
/// <item>shorten, live: a job still running is waited for (an active commit is pivoted); then the new chain is
/// finished (definition, deletions) or, if the chain is the old one, the operation is closed as not done;</item>
/// <item>shorten, offline: the qemu-img step is repeated (each is idempotent), then finished;</item>
/// <item>move-disk before the pivot: the copy job is aborted, the partial destination removed (the VM stays on its
/// source); after the pivot: finished.</item>
/// </list>
/// Takes the domain's host run lock; an entry of a domain another process holds is skipped.
/// </summary>
public sealed class ChainRecovery(IHypervisor hypervisor, WorkflowOptions options, ILogger logger)
{
    private readonly ChainJournal journal = new(options.StateDirectory);
    private readonly ChainFinisher finisher = new(hypervisor, logger);

    public async Task<IReadOnlyList<RecoveryAction>> RecoverAsync(string? onlyUuid, bool dryRun, CancellationToken ct)
    {
        var actions = new List<RecoveryAction>();
        foreach (var entry in journal.OpenEntries().Where(e => onlyUuid is null || string.Equals(e.DomainUuid, onlyUuid, StringComparison.OrdinalIgnoreCase)))
        {
            ct.ThrowIfCancellationRequested();
            var what = $"{entry.Operation} {entry.Id}";
            if (dryRun)
            {
                actions.Add(new RecoveryAction(entry.DomainName, entry.Target, what, $"would settle the interrupted {entry.Operation} (step {entry.Step})", false, null));
                continue;
            }
            using var domainLock = HostRunLock.TryAcquire(options.StateDirectory, entry.DomainUuid);
            if (domainLock is null)
            {
                actions.Add(new RecoveryAction(entry.DomainName, entry.Target, what, "skipped: another backupd process holds this domain", false, null));
                continue;
            }
            try
            {
                var action = entry.Operation == "move-disk" ? await MoveAsync(entry, ct) : await ShortenAsync(entry, ct);
                journal.Close(entry);
                ChainsLog.Recovered(logger, entry.Id, entry.DomainName, entry.Target, action);
                actions.Add(new RecoveryAction(entry.DomainName, entry.Target, what, action, true, null));
            }
            catch (Exception e) when (e is LibvirtException or IOException or FormatException or ChainRefusedException)
            {
                ChainsLog.Failed(logger, e, entry.Id, entry.DomainName);
                actions.Add(new RecoveryAction(entry.DomainName, entry.Target, what, "settle the interrupted " + entry.Operation, false, Hints.Explain(e)));
            }
        }
        return actions;
    }

    private async Task<string> ShortenAsync(ChainJournalEntry entry, CancellationToken ct)
    {
        var domain = hypervisor.FindDomain(entry.DomainUuid);
        if (domain is null) return "the domain is gone: nothing left to settle";
        if (!entry.Live)
        {
            if (domain.IsActive && entry.Step < ChainStep.JobDone)
                throw new IOException($"{entry.DomainName} was started before its offline {entry.Method} finished: check its chain with `backupd chain show`, then run the shorten again");
            if (entry.Step < ChainStep.JobDone) await ChainShortener.RunOfflineAsync(entry, ct);
            return await FinishAsync(entry, $"offline {entry.Method} completed", ct);
        }
        var job = domain.IsActive ? hypervisor.GetBlockJob(entry.DomainUuid, entry.Target) : null;
        var note = "";
        if (job is not null)
        {
            if (job.Type is not (BlockJobType.Commit or BlockJobType.ActiveCommit or BlockJobType.Pull))
                throw new IOException($"disk {entry.Target} has a {job.Type} job backupd did not start; left alone");
            if (entry.ActiveCommit)
            {
                // The data is all in the base once READY: finishing (pivot) is the shortest way to a consistent end.
                var ready = await BlockJobRunner.WaitAsync(hypervisor, entry.DomainUuid, entry.Target, BlockJobGoal.Ready, "commit", null, ct);
                if (ready == BlockJobOutcome.Ready && !await BlockJobRunner.PivotAsync(hypervisor, entry.DomainUuid, entry.Target, entry.FinalActive))
                    throw new IOException($"pivot of {entry.Target} onto '{entry.FinalActive}' not confirmed");
                note = "active commit pivoted; ";
            }
            else
            {
                await BlockJobRunner.WaitAsync(hypervisor, entry.DomainUuid, entry.Target, BlockJobGoal.Gone, entry.Method!, null, ct);
                note = $"{entry.Method} job waited for; ";
            }
        }
        var live = BlockJobRunner.LiveDisk(hypervisor, entry.DomainUuid, entry.Target);
        if (live is not null && BlockJobRunner.LiveChain(live).SequenceEqual(ChainShortener.Expected(entry)))
            return await FinishAsync(entry, note + "finished on the new chain", ct);
        // The job never started, failed, was aborted, or the domain stopped under it: QEMU keeps a chain it had.
        return note + "not done: the disk keeps its old chain (run the shorten again)";
    }

    private async Task<string> MoveAsync(ChainJournalEntry entry, CancellationToken ct)
    {
        var domain = hypervisor.FindDomain(entry.DomainUuid);
        var destination = RealPath.Of(entry.FinalActive);
        if (entry.Live && domain is { IsActive: true })
        {
            if (hypervisor.GetBlockJob(entry.DomainUuid, entry.Target) is { } job)
            {
                if (job.Type != BlockJobType.Copy) throw new IOException($"disk {entry.Target} has a {job.Type} job backupd did not start; left alone");
                if (entry.Step >= ChainStep.PivotRequested)
                    await hypervisor.WaitForBlockJobAsync(entry.DomainUuid, entry.Target, BlockJobGoal.Gone, TimeSpan.FromMinutes(2));
                else
                    await BlockJobRunner.AbortAsync(hypervisor, entry.DomainUuid, entry.Target);
            }
            if (BlockJobRunner.LiveSource(hypervisor, entry.DomainUuid, entry.Target) is { } s && RealPath.Of(s) == destination)
                return await FinishAsync(entry, "pivoted: finished on the destination", ct);
            return Undo(entry, "copy aborted: the disk stays on its source");
        }
        if (entry.Step >= ChainStep.JobDone) return await FinishAsync(entry, "copied: finished on the destination", ct);
        // Offline copy cut short, or the domain stopped mid-mirror (its copy job died with QEMU).
        return Undo(entry, "copy not finished: the disk stays on its source");
    }

    private string Undo(ChainJournalEntry entry, string action)
    {
        var persistent = hypervisor.FindDomain(entry.DomainUuid) is { Persistent: true }
            ? DomainXml.ParseDisks(hypervisor.GetXml(entry.DomainUuid, DomainXmlKind.Persistent)).FirstOrDefault(d => d.Target == entry.Target)?.SourcePath
            : null;
        if (persistent is not null && RealPath.Of(persistent) == RealPath.Of(entry.FinalActive))
            throw new IOException($"the persistent definition of {entry.DomainName} already names '{entry.FinalActive}'; not removing it");
        if (entry.DestinationCreated && File.Exists(entry.FinalActive))
        {
            File.Delete(entry.FinalActive);
            return action + $", partial '{entry.FinalActive}' removed";
        }
        return action;
    }

    private async Task<string> FinishAsync(ChainJournalEntry entry, string action, CancellationToken ct)
    {
        finisher.Redefine(entry);
        var (deleted, kept) = await finisher.DeleteUnreferencedAsync(entry, ct);
        return action + (deleted.Count > 0 ? $"; deleted {string.Join(", ", deleted)}" : "") + (kept.Count > 0 ? $"; kept {string.Join(", ", kept)} (still used)" : "");
    }
}
