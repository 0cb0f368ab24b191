using Microsoft.Extensions.Logging;

namespace Backupd.Daemon.ChangedBlocks;

/// <summary>Log messages of changed-block tracking (event ids 12000-12999).</summary>
internal static partial class ChangedBlocksLog
{
    [LoggerMessage(12000, LogLevel.Information, "{File}: bitmap {Bitmap} marks {DirtyBytes} bytes dirty in {Ranges} ranges; the plan reads {BlocksToRead} of {Blocks} blocks ({BytesToRead} bytes), planned in {Milliseconds} ms")]
    public static partial void Planned(ILogger logger, string file, string bitmap, long dirtyBytes, int ranges, long blocksToRead, long blocks, long bytesToRead, long milliseconds);

    [LoggerMessage(12001, LogLevel.Warning, "{File}: no changed-block plan from bitmap {Bitmap}, the file is read fully: {Reason}")]
    public static partial void NoPlan(ILogger logger, string file, string bitmap, string reason);

    [LoggerMessage(12002, LogLevel.Warning, "qemu-nbd {Pid} of an interrupted run was still serving; stopped it")]
    public static partial void LeftoverExportStopped(ILogger logger, int pid);

    [LoggerMessage(12003, LogLevel.Warning, "qemu-nbd {Pid} did not exit {Seconds} s after SIGTERM; killed it")]
    public static partial void ExportKilled(ILogger logger, int pid, int seconds);
}
