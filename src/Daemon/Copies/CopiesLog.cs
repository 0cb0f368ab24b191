using Microsoft.Extensions.Logging;

namespace Backupd.Daemon.Copies;

/// <summary>Log events of copies to copy targets (Offsite range, 10500+).</summary>
internal static partial class CopiesLog
{
    [LoggerMessage(EventId = 10500, EventName = "CopyStarted", Level = LogLevel.Information, Message = "copy of {PointId} to {Target} started (run {RunId})")]
    public static partial void CopyStarted(ILogger logger, string pointId, string target, long runId);

    [LoggerMessage(EventId = 10501, EventName = "CopyFinished", Level = LogLevel.Information, Message = "copy of {PointId} to {Target} done: {ChunksSent} chunks sent, {BytesSent} bytes, {Seconds:F1} s")]
    public static partial void CopyFinished(ILogger logger, string pointId, string target, long chunksSent, long bytesSent, double seconds);

    [LoggerMessage(EventId = 10502, EventName = "CopyFailed", Level = LogLevel.Warning, Message = "copy of {PointId} to {Target} failed: {Error}")]
    public static partial void CopyFailed(ILogger logger, string pointId, string target, string error);

    [LoggerMessage(EventId = 10503, EventName = "CopyRetrying", Level = LogLevel.Warning, Message = "policy {Policy}: copy of {PointId} to {Target} failed; retrying in {Seconds:F0} s (retry {Retry} of {Retries})")]
    public static partial void CopyRetrying(ILogger logger, string policy, string pointId, string target, double seconds, int retry, int retries);

    [LoggerMessage(EventId = 10504, EventName = "CopyGaveUp", Level = LogLevel.Error, Message = "policy {Policy}: copy of {PointId} to {Target} failed {Attempts} times, giving up until the next backup: {Error}")]
    public static partial void CopyGaveUp(ILogger logger, string policy, string pointId, string target, int attempts, string error);
}
