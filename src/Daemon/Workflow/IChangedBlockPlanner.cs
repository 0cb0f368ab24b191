using Backupd.Storage.ChangedBlocks;

namespace Backupd.Daemon.Workflow;

/// <summary>A read plan for one frozen base, or why there is none (then the file is read in full).</summary>
public sealed record PlannedRead(ReadPlan? Plan, string? FullReadReason, TimeSpan MapTime);

/// <summary>
/// The workflow's view of the changed-block planner (src/Daemon/ChangedBlocks: bitmap validation, qemu-nbd export of the frozen
/// base, NBD block status, qemu-img map): fakeable, and the one place the workflow meets it.
/// </summary>
public interface IChangedBlockPlanner
{
    /// <summary>
    /// Never throws except for cancellation: anything unexpected is a <see cref="PlannedRead"/> without a plan. The export is
    /// stopped before it returns; <paramref name="exportStarted"/> gets its pid first, for the run journal.
    /// </summary>
    Task<PlannedRead> PlanAsync(string baseFile, string bitmapName, int blockSize, Action<int>? exportStarted, CancellationToken ct);

    /// <summary>Stops an export a run journaled and did not stop (it died meanwhile); nothing when the pid is not such an export.</summary>
    void StopLeftoverExport(int pid);
}
