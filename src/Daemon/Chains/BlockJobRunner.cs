using Backupd.Daemon.Libvirt;

namespace Backupd.Daemon.Chains;

/// <summary>Progress of a running job: bytes done of bytes to do (libvirt's cur/end), and what it is doing.</summary>
public readonly record struct ChainProgress(string Step, long Done, long Total);

/// <summary>
/// Waits for a block job while reporting its progress (cur/end from virDomainGetBlockJobInfo each second), on top of
/// <see cref="IHypervisor.WaitForBlockJobAsync"/> (events plus polling). No overall timeout: a commit of a large
/// layer takes as long as it takes; the caller's token ends the wait.
/// </summary>
internal static class BlockJobRunner
{
    private static readonly TimeSpan Slice = TimeSpan.FromSeconds(1);

    public static async Task<BlockJobOutcome> WaitAsync(IHypervisor hypervisor, string uuid, string target, BlockJobGoal goal, string step,
        Action<ChainProgress>? progress, CancellationToken ct)
    {
        while (true)
        {
            ct.ThrowIfCancellationRequested();
            var outcome = await hypervisor.WaitForBlockJobAsync(uuid, target, goal, Slice);
            if (outcome != BlockJobOutcome.TimedOut) return outcome;
            if (progress is not null && hypervisor.GetBlockJob(uuid, target) is { } job)
                progress(new ChainProgress(step, (long)job.Cur, (long)job.End));
        }
    }

    /// <summary>Pivot of a READY job and the wait for it to go; true when the live XML then shows <paramref name="expected"/> active.</summary>
    public static async Task<bool> PivotAsync(IHypervisor hypervisor, string uuid, string target, string expected)
    {
        hypervisor.Pivot(uuid, target);
        var gone = await hypervisor.WaitForBlockJobAsync(uuid, target, BlockJobGoal.Gone, TimeSpan.FromMinutes(2));
        return gone == BlockJobOutcome.Gone && LiveSource(hypervisor, uuid, target) is { } s && RealPath.Of(s) == RealPath.Of(expected);
    }

    /// <summary>Cancels a job without pivoting and waits until it is gone.</summary>
    public static async Task AbortAsync(IHypervisor hypervisor, string uuid, string target)
    {
        if (hypervisor.GetBlockJob(uuid, target) is null) return;
        hypervisor.AbortBlockJob(uuid, target);
        await hypervisor.WaitForBlockJobAsync(uuid, target, BlockJobGoal.Gone, TimeSpan.FromMinutes(2));
    }

    /// <summary>The disk as the running QEMU has it, or null when the domain does not run or has no such disk.</summary>
    public static DomainDisk? LiveDisk(IHypervisor hypervisor, string uuid, string target) =>
        hypervisor.FindDomain(uuid) is { IsActive: true }
            ? DomainXml.ParseDisks(hypervisor.GetXml(uuid, DomainXmlKind.Live)).FirstOrDefault(d => d.Target == target)
            : null;

    public static string? LiveSource(IHypervisor hypervisor, string uuid, string target) => LiveDisk(hypervisor, uuid, target)?.SourcePath;

    /// <summary>The live chain as real paths, active first.</summary>
    public static List<string> LiveChain(DomainDisk disk) =>
        [RealPath.Of(disk.SourcePath!), .. disk.BackingChain.Where(b => b.Path is not null).Select(b => RealPath.Of(b.Path!))];
}
