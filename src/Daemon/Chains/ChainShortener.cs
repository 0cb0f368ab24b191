using Backupd.Daemon.Images;
using System.Diagnostics;
using Backupd.Daemon.Libvirt;
using Backupd.Daemon.Workflow;
using Microsoft.Extensions.Logging;

namespace Backupd.Daemon.Chains;

public sealed record ShortenOptions(long? Bandwidth = null, bool DeleteMerged = false);

/// <summary>What a shorten did to one disk.</summary>
public sealed record ShortenResult(string Domain, string Target, string Method, bool Live, string Plan, int DepthBefore, int DepthAfter,
    string Active, double Seconds, IReadOnlyList<string> Deleted, IReadOnlyList<string> Kept);

/// <summary>
/// Runs a <see cref="ChainPlan"/>: live with libvirt block jobs (commit, active commit + pivot, pull), or offline with
/// qemu-img (commit, rebase) when the domain is shut off. Journaled before the job starts and at each step, so a kill
/// anywhere is finished or undone by <see cref="ChainRecovery"/>. The caller holds the domain's run lock.
/// </summary>
public sealed class ChainShortener(IHypervisor hypervisor, ChainJournal journal, ILogger logger)
{
    private readonly ChainFinisher finisher = new(hypervisor, logger);

    public async Task<ShortenResult> RunAsync(DomainInfo domain, DomainDisk disk, DiskChain chain, ChainPlan plan, ShortenOptions options,
        Action<ChainProgress>? progress, CancellationToken ct)
    {
        var clock = Stopwatch.StartNew();
        var layers = chain.Layers;
        var entry = ChainJournalEntry.Begin("shorten", domain, disk, chain, layers[plan.NewActive].Path, layers[plan.NewActive].Format ?? "qcow2") with
        {
            Method = plan.Method.ToString().ToLowerInvariant(),
            ActiveCommit = plan.ActiveCommit,
            TopIndex = plan.TopIndex,
            BaseIndex = plan.BaseIndex,
            DiskType = disk.Type,
            // Files backupd did not create stay unless the operator said --delete-merged.
            DeleteAfter = [.. plan.MergedAway.Select(i => layers[i].Path).Where(p => options.DeleteMerged || OverlayNaming.IsOverlay(p))],
        };
        ChainsLog.Planned(logger, "shorten", domain.Name, disk.Target, plan.Describe(layers));
        journal.Write(entry);
        Faults.Hit(Faults.ChainAfterJournal);
        try
        {
            if (entry.Live) await RunLiveAsync(entry, disk, plan, options, progress, ct);
            else
            {
                progress?.Invoke(new ChainProgress("qemu-img", 0, 1));
                await RunOfflineAsync(entry, ct);
            }
            journal.Step(entry, ChainStep.JobDone);
            ChainsLog.JobDone(logger, domain.Name, disk.Target, entry.FinalActive, plan.DepthAfter);
            Faults.Hit(Faults.ChainAfterJob);
            finisher.Redefine(entry);
            journal.Step(entry, ChainStep.DefinitionUpdated);
            var (deleted, kept) = await finisher.DeleteUnreferencedAsync(entry, CancellationToken.None);
            kept.AddRange(plan.MergedAway.Select(i => layers[i].Path).Except(entry.DeleteAfter));
            journal.Close(entry);
            return new ShortenResult(domain.Name, disk.Target, entry.Method!, entry.Live, plan.Describe(layers), plan.DepthBefore, plan.DepthAfter,
                entry.FinalActive, clock.Elapsed.TotalSeconds, deleted, kept);
        }
        catch (Exception e) when (e is not InjectedFaultException)
        {
            // The chain is as before (a failed or cancelled job) or as planned; only the open journal entry says which is unsure.
            entry.Error = e.Message;
            if (e is OperationCanceledException && entry.Live) await BlockJobRunner.AbortAsync(hypervisor, entry.DomainUuid, entry.Target);
            if (entry.Step < ChainStep.JobDone && (e is OperationCanceledException || e is ChainRefusedException)) journal.Close(entry);
            else journal.Write(entry);
            ChainsLog.Failed(logger, e, entry.Id, entry.DomainName);
            throw;
        }
    }

    private async Task RunLiveAsync(ChainJournalEntry entry, DomainDisk disk, ChainPlan plan, ShortenOptions options, Action<ChainProgress>? progress, CancellationToken ct)
    {
        // libvirt names layers as its live XML does: match them to qemu-img's by real path, index for index.
        string[] live = [disk.SourcePath!, .. disk.BackingChain.Select(b => b.Path ?? "")];
        if (live.Length != entry.ChainBefore.Count || live.Where((p, i) => RealPath.Of(p) != RealPath.Of(entry.ChainBefore[i])).Any())
            throw new ChainRefusedException($"libvirt's chain of {disk.Target} ({string.Join(" <- ", live.Reverse())}) differs from the image headers' " +
                $"({string.Join(" <- ", entry.ChainBefore.AsEnumerable().Reverse())}); nothing was done", FailureKind.Failed);
        if (hypervisor.GetBlockJob(entry.DomainUuid, entry.Target) is { } other)
            throw new ChainRefusedException($"disk {entry.Target} already has a {other.Type} block job; nothing was done", FailureKind.Busy);

        if (plan.Method == ShortenMethod.Commit)
            hypervisor.StartCommit(entry.DomainUuid, entry.Target, plan.ActiveCommit ? null : live[plan.TopIndex!.Value], live[plan.BaseIndex!.Value], plan.ActiveCommit, options.Bandwidth);
        else
            hypervisor.StartPull(entry.DomainUuid, entry.Target, plan.BaseIndex is { } b ? live[b] : null, options.Bandwidth);
        journal.Step(entry, ChainStep.JobStarted);
        ChainsLog.JobStarted(logger, entry.DomainName, entry.Target, plan.ActiveCommit ? "active commit" : entry.Method!);
        Faults.Hit(Faults.ChainMidJob);

        var outcome = await BlockJobRunner.WaitAsync(hypervisor, entry.DomainUuid, entry.Target,
            plan.ActiveCommit ? BlockJobGoal.Ready : BlockJobGoal.Gone, entry.Method!, progress, ct);
        if (plan.ActiveCommit)
        {
            if (outcome != BlockJobOutcome.Ready) throw new IOException($"active commit of {entry.Target} did not become ready: {outcome}; the disk stays on its chain");
            journal.Step(entry, ChainStep.PivotRequested);
            if (!await BlockJobRunner.PivotAsync(hypervisor, entry.DomainUuid, entry.Target, entry.FinalActive))
                throw new IOException($"the pivot of {entry.Target} onto '{entry.FinalActive}' is not confirmed in the live XML: run `backupd recover`");
        }
        else if (outcome != BlockJobOutcome.Gone)
        {
            throw new IOException($"{entry.Method} job of {entry.Target} ended {outcome}; the chain is unchanged");
        }
        ConfirmLiveChain(entry);
    }

    /// <summary>libvirt's word that the job is done: the merged-away layers are no longer in the live chain.</summary>
    internal void ConfirmLiveChain(ChainJournalEntry entry)
    {
        var disk = BlockJobRunner.LiveDisk(hypervisor, entry.DomainUuid, entry.Target)
            ?? throw new IOException($"disk {entry.Target} of {entry.DomainName} is no longer live");
        var chain = BlockJobRunner.LiveChain(disk);
        var expected = Expected(entry);
        if (!chain.SequenceEqual(expected))
            throw new IOException($"after the job {entry.Target} has the chain {string.Join(" <- ", chain.AsEnumerable().Reverse())}, " +
                $"not the planned {string.Join(" <- ", expected.AsEnumerable().Reverse())}: run `backupd recover`");
    }

    /// <summary>The chain the plan ends with, as real paths, active first.</summary>
    internal static List<string> Expected(ChainJournalEntry entry)
    {
        var before = entry.ChainBefore.Select(RealPath.Of).ToList();
        if (entry.Method == "pull") return [before[0], .. entry.BaseIndex is { } b ? before[b..] : []];
        return entry.ActiveCommit ? before[entry.BaseIndex!.Value..] : [before[0], .. before[entry.BaseIndex!.Value..]];
    }

    /// <summary>
    /// qemu-img on a shut-off domain. Each form is safe to repeat after a kill (recovery does): commit -d leaves the
    /// top's data in place, and a rebase rewrites the header only after the data is copied.
    /// </summary>
    internal static async Task RunOfflineAsync(ChainJournalEntry entry, CancellationToken ct)
    {
        var paths = entry.ChainBefore;
        string Format(int i) => entry.FormatsBefore.ElementAtOrDefault(i) ?? "qcow2";
        if (entry.Method == "pull")
        {
            await QemuImg.RebaseAsync(paths[0], Format(0), entry.BaseIndex is { } b ? paths[b] : null, entry.BaseIndex is { } f ? Format(f) : null, ct);
        }
        else if (entry.ActiveCommit)
        {
            await QemuImg.CommitIntoAsync(paths[0], Format(0), paths[entry.BaseIndex!.Value], ct);
        }
        else
        {
            var baseIndex = entry.BaseIndex!.Value;
            await QemuImg.CommitIntoAsync(paths[entry.TopIndex!.Value], Format(entry.TopIndex.Value), paths[baseIndex], ct);
            // The active layer's data is its own; only its backing reference moves down to the layer that now holds the rest.
            await QemuImg.RebaseUnsafeAsync(paths[0], Format(0), paths[baseIndex], Format(baseIndex), ct);
        }
    }
}
