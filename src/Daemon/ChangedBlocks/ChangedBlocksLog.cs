using Microsoft.Extensions.Logging;

namespace Backupd.Daemon.ChangedBlocks;

/// <summary>Log messages of changed-block tracking (event ids 12000-12999).</summary>
internal static partial class ChangedBlocksLog
{
    [LoggerMessage(EventId = 12000, EventName = "Planned", Level = LogLevel.Information, Message = "{File}: bitmap {Bitmap} marks {DirtyBytes} bytes dirty in {Ranges} ranges; the plan reads {BlocksToRead} of {Blocks} blocks ({BytesToRead} bytes), planned in {Milliseconds} ms")]
    public static partial void Planned(ILogger logger, string file, string bitmap, long dirtyBytes, int ranges, long blocksToRead, long blocks, long bytesToRead, long milliseconds);

    [LoggerMessage(EventId = 12001, EventName = "NoPlan", Level = LogLevel.Warning, Message = "{File}: no changed-block plan from bitmap {Bitmap}, the file is read fully: {Reason}")]
    public static partial void NoPlan(ILogger logger, string file, string bitmap, string reason);

    [LoggerMessage(EventId = 12002, EventName = "LeftoverExportStopped", Level = LogLevel.Warning, Message = "qemu-nbd {Pid} of an interrupted run was still serving; stopped it")]
    public static partial void LeftoverExportStopped(ILogger logger, int pid);

    [LoggerMessage(EventId = 12003, EventName = "ExportKilled", Level = LogLevel.Warning, Message = "qemu-nbd {Pid} did not exit {Seconds} s after SIGTERM; killed it")]
    public static partial void ExportKilled(ILogger logger, int pid, int seconds);
}
