using Microsoft.Extensions.Logging;

namespace Backupd.Daemon.Drills;

/// <summary>Log messages of restore drills and instant restores (event ids 11100-11199).</summary>
internal static partial class DrillsLog
{
    [LoggerMessage(EventId = 11100, EventName = "DrillStarted", Level = LogLevel.Information, Message = "drill of {Domain} point {Point}: {DrillDomain} started on overlays ({Backing})")]
    public static partial void DrillStarted(ILogger logger, string domain, string point, string drillDomain, string backing);

    [LoggerMessage(EventId = 11101, EventName = "DrillPassed", Level = LogLevel.Information, Message = "drill of {Domain} point {Point} passed: RTO {RtoSeconds:0.0} s")]
    public static partial void DrillPassed(ILogger logger, string domain, string point, double rtoSeconds);

    [LoggerMessage(EventId = 11102, EventName = "DrillFailed", Level = LogLevel.Warning, Message = "drill of {Domain} point {Point} failed: {Reason}")]
    public static partial void DrillFailed(ILogger logger, string domain, string point, string reason);

    [LoggerMessage(EventId = 11103, EventName = "DrillTeardownFailed", Level = LogLevel.Warning, Message = "could not remove {What} of drill {Drill}")]
    public static partial void DrillTeardownFailed(ILogger logger, string what, string drill, Exception exception);

    [LoggerMessage(EventId = 11104, EventName = "DrillLeftoverRemoved", Level = LogLevel.Information, Message = "recover: removed drill domain {DrillDomain} and its overlays ({Directory}) left by a run that died")]
    public static partial void DrillLeftoverRemoved(ILogger logger, string drillDomain, string directory);

    [LoggerMessage(EventId = 11105, EventName = "DrillNotRecorded", Level = LogLevel.Warning, Message = "could not record drill {Drill} in the catalog")]
    public static partial void DrillNotRecorded(ILogger logger, string drill, Exception exception);

    [LoggerMessage(EventId = 11110, EventName = "InstantStarted", Level = LogLevel.Information, Message = "instant restore of {Domain} point {Point}: {NewDomain} started after {Seconds:0.0} s; pulling its data in")]
    public static partial void InstantStarted(ILogger logger, string domain, string point, string newDomain, double seconds);

    [LoggerMessage(EventId = 11111, EventName = "InstantDiskDone", Level = LogLevel.Information, Message = "instant restore {NewDomain}: disk {Disk} no longer depends on the repository")]
    public static partial void InstantDiskDone(ILogger logger, string newDomain, string disk);

    [LoggerMessage(EventId = 11112, EventName = "InstantFailed", Level = LogLevel.Warning, Message = "instant restore {NewDomain} failed: {Reason}")]
    public static partial void InstantFailed(ILogger logger, string newDomain, string reason);

    [LoggerMessage(EventId = 11113, EventName = "InstantResumed", Level = LogLevel.Information, Message = "recover: resuming the block pull of instant restore {NewDomain}")]
    public static partial void InstantResumed(ILogger logger, string newDomain);
}
