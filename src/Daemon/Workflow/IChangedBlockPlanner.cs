using Backupd.Daemon.ChangedBlocks;

namespace Backupd.Daemon.Workflow;

/// <summary>
/// The workflow's view of the changed-block planner (src/Daemon/ChangedBlocks: bitmap validation, qemu-nbd export of the frozen
/// base, NBD block status, qemu-img map): fakeable, and the one place the workflow meets it.
/// </summary>
public interface IChangedBlockPlanner
{
    /// <summary>
    /// Never throws except for cancellation: anything unexpected is a <see cref="PlanOutcome"/> without a plan. The export is
    /// stopped before it returns; <paramref name="exportStarted"/> gets its pid first, for the run journal.
    /// </summary>
    Task<PlanOutcome> PlanAsync(string baseFile, string bitmapName, int blockSize, Action<int>? exportStarted, CancellationToken ct);

    /// <summary>Stops an export a run journaled and did not stop (it died meanwhile); nothing when the pid is not such an export.</summary>
    void StopLeftoverExport(int pid);
}

/// <summary>The real planner: libnbd on a qemu-nbd export of the frozen base.</summary>
public sealed class LibnbdPlanner(ChangedBlockPlanner planner) : IChangedBlockPlanner
{
    public LibnbdPlanner() : this(new ChangedBlockPlanner()) { }

    public Task<PlanOutcome> PlanAsync(string baseFile, string bitmapName, int blockSize, Action<int>? exportStarted, CancellationToken ct) =>
        planner.PlanAsync(baseFile, bitmapName, blockSize, exportStarted, ct);

    public void StopLeftoverExport(int pid) => ChangedBlockPlanner.StopLeftoverExport(pid);
}
