using Microsoft.Extensions.Logging;

namespace Backupd.Daemon.Copies;

/// <summary>Log events of copies to copy targets (Offsite range, 10500+).</summary>
internal static partial class CopiesLog
{
    [LoggerMessage(EventId = 10500, Level = LogLevel.Information, Message = "copy of {PointId} to {Target} started (run {RunId})")]
    public static partial void CopyStarted(ILogger logger, string pointId, string target, long runId);

    [LoggerMessage(EventId = 10501, Level = LogLevel.Information, Message = "copy of {PointId} to {Target} done: {ChunksSent} chunks sent, {BytesSent} bytes, {Seconds:F1} s")]
    public static partial void CopyFinished(ILogger logger, string pointId, string target, long chunksSent, long bytesSent, double seconds);

    [LoggerMessage(EventId = 10502, Level = LogLevel.Warning, Message = "copy of {PointId} to {Target} failed: {Error}")]
    public static partial void CopyFailed(ILogger logger, string pointId, string target, string error);
}
