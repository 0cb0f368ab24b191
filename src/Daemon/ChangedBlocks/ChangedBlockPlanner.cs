using System.Diagnostics;
using Backupd.Daemon.Images;
using Backupd.Storage.ChangedBlocks;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;

namespace Backupd.Daemon.ChangedBlocks;

/// <summary>The plan for one file, or why there is none (then the file is read fully). <see cref="MapTime"/>: the time planning took.</summary>
public sealed record PlanOutcome(ReadPlan? Plan, string? FullReadReason, TimeSpan MapTime)
{
    /// <summary>Guest bytes the bitmap marked dirty (0 without a plan).</summary>
    public long DirtyBytes { get; init; }
}

/// <summary>
/// Makes the changed-block read plan of a frozen qcow2 base (docs/repository-format.md, "Changed-block read plan"):
/// validate the bitmap (<c>qemu-img info -U</c>), export the base read-only with that bitmap (qemu-nbd), read the dirty map
/// through libnbd, stop qemu-nbd, build the plan from the file's mapping (<c>qemu-img map -U</c>, run alongside from the start). Anything unexpected gives a
/// <see cref="PlanOutcome"/> with the reason, never an exception that fails the backup (except cancellation); qemu-nbd is
/// always gone when this returns, so the active commit can take the base's write lock.
/// </summary>
public sealed class ChangedBlockPlanner(ILogger<ChangedBlockPlanner>? logger = null)
{
    private readonly ILogger _logger = (ILogger?)logger ?? NullLogger.Instance;

    /// <param name="exportStarted">Called with qemu-nbd's pid once it serves (for the run journal, so <c>recover</c> can stop it).</param>
    public async Task<PlanOutcome> PlanAsync(string baseFile, string bitmapName, int blockSize, Action<int>? exportStarted, CancellationToken ct)
    {
        ArgumentException.ThrowIfNullOrEmpty(baseFile);
        ArgumentException.ThrowIfNullOrEmpty(bitmapName);
        var watch = Stopwatch.StartNew();
        // The file's mapping does not depend on the bitmap: qemu-img map runs while the bitmap is checked and exported (both read the
        // frozen base read-only), which takes its ~50 ms off the overlay's lifetime. Awaited on every path below, so no qemu-img is
        // left holding the base when this returns.
        var mapping = QemuImg.MapJsonAsync(baseFile, ct);
        try
        {
            var check = BitmapCheck.Validate(await QemuImg.ImageJsonAsync(baseFile, ct), bitmapName, blockSize);
            if (!check.Usable)
            {
                return NoPlan(baseFile, bitmapName, check.Reason!, watch);
            }
            DirtyClusters dirty;
            await using (var export = await QemuNbdExport.StartAsync(baseFile, bitmapName, _logger, ct))
            {
                exportStarted?.Invoke(export.Pid);
                dirty = await Task.Run(() => DirtyMapReader.Read(export.SocketPath, bitmapName, ct), ct);
                await export.StopAsync();
            }
            if (dirty.CoveredLength != check.VirtualSize)
            {
                return NoPlan(baseFile, bitmapName, $"the NBD export has {dirty.CoveredLength} bytes but the image's virtual size is {check.VirtualSize}", watch);
            }
            var mappings = ImageMap.Parse(await mapping);
            var plan = ReadPlan.Build(new FileInfo(baseFile).Length, blockSize, mappings, dirty);
            ChangedBlocksLog.Planned(_logger, baseFile, bitmapName, dirty.DirtyBytes, dirty.RangeCount, plan.BlocksToRead, plan.BlockCount, plan.BytesToRead, watch.ElapsedMilliseconds);
            return new PlanOutcome(plan, null, watch.Elapsed) { DirtyBytes = dirty.DirtyBytes };
        }
        catch (OperationCanceledException) when (ct.IsCancellationRequested)
        {
            throw;
        }
        catch (DllNotFoundException)
        {
            return NoPlan(baseFile, bitmapName, "libnbd is not installed (apt-get install -y libnbd0)", watch);
        }
        catch (Exception e)
        {
            // A full read is always correct: whatever went wrong here (a tool, the export, the map) must not fail the backup.
            return NoPlan(baseFile, bitmapName, e.Message, watch);
        }
        finally
        {
            await Settle(mapping);
        }
    }

    /// <summary>Waits for the concurrent qemu-img map to end (its failure, if any, no longer matters: there is no plan).</summary>
    private static async Task Settle(Task mapping)
    {
        try { await mapping; }
        catch (Exception e) when (e is not OutOfMemoryException) { /* the plan already failed for its own reason */ }
    }

    /// <summary>For <c>recover</c>: stops the qemu-nbd an interrupted run journaled, if it still serves.</summary>
    public static void StopLeftoverExport(int pid) => QemuNbdExport.StopLeftover(pid, null);

    private PlanOutcome NoPlan(string file, string bitmap, string reason, Stopwatch watch)
    {
        ChangedBlocksLog.NoPlan(_logger, file, bitmap, reason);
        return new PlanOutcome(null, reason, watch.Elapsed);
    }
}
