using Microsoft.Extensions.Logging;

namespace Backupd.Daemon.Runs;

/// <summary>The log catalogue of Runs (event ids 2000-2999): what a run tells the operator about its catalog records.</summary>
internal static partial class RunsLog
{
    [LoggerMessage(2000, LogLevel.Information, "run {RunId}: backing up {Domain} ({Uuid}) for {Who} via {Trigger}")]
    public static partial void RunStarted(this ILogger logger, long runId, string domain, Guid uuid, string who, string trigger);

    [LoggerMessage(2001, LogLevel.Error, "run {RunId}: could not remove the refused run from the catalog")]
    public static partial void RefusedRunNotRemoved(this ILogger logger, Exception error, long runId);

    [LoggerMessage(2002, LogLevel.Warning, "run {RunId}: refused, nothing done: {Message}")]
    public static partial void RunRefusedBusy(this ILogger logger, long runId, string message);

    [LoggerMessage(2003, LogLevel.Warning, "run {RunId}: backup of {Domain} refused, nothing was done: {Reason}")]
    public static partial void RunRefused(this ILogger logger, long runId, string domain, string reason);

    [LoggerMessage(2004, LogLevel.Error, "run {RunId}: could not record its end in the catalog")]
    public static partial void RunEndNotRecorded(this ILogger logger, Exception error, long runId);

    [LoggerMessage(2005, LogLevel.Error, "run {RunId}: backup of {Domain} {State} at step {Step}")]
    public static partial void RunFailed(this ILogger logger, Exception error, long runId, string domain, string state, string step);

    [LoggerMessage(2006, LogLevel.Information, "run {RunId}: restore point {Point} of {Domain} recorded")]
    public static partial void PointRecorded(this ILogger logger, long runId, string point, string domain);

    [LoggerMessage(2007, LogLevel.Information, "run {RunId}: the catalog is back; recorded as {State} after {Attempts} attempts")]
    public static partial void CatalogBack(this ILogger logger, long runId, string state, int attempts);

    [LoggerMessage(2008, LogLevel.Error, "run {RunId}: cannot keep the unrecorded run in {Directory}")]
    public static partial void PendingNotKept(this ILogger logger, Exception error, long runId, string directory);

    [LoggerMessage(2009, LogLevel.Error, "run {RunId}: the catalog is still unreachable after {Elapsed:F0} s ({Message}); {Later}")]
    public static partial void CatalogStillUnreachable(this ILogger logger, Exception error, long runId, double elapsed, string message, string later);

    [LoggerMessage(2010, LogLevel.Warning, "run {RunId}: cannot record the run as {State} in the catalog ({Message}); retrying for up to {Window:F0} s")]
    public static partial void CatalogRetrying(this ILogger logger, long runId, string state, string message, double window);

    [LoggerMessage(2011, LogLevel.Error, "cannot read the unrecorded run {File}: {Why}; left in place")]
    public static partial void PendingUnreadable(this ILogger logger, string file, string why);

    [LoggerMessage(2012, LogLevel.Error, "run {RunId} of {Domain}: cannot be finished in this catalog ({Message}); its record is now {File}{Rebuild}")]
    public static partial void PendingNotFinishable(this ILogger logger, Exception error, long runId, string domain, string message, string file, string rebuild);

    [LoggerMessage(2013, LogLevel.Warning, "run {RunId} of {Domain}: recorded as {State}{Point} (its process could not reach the catalog)")]
    public static partial void PendingRecorded(this ILogger logger, long runId, string domain, string state, string point);

    [LoggerMessage(2014, LogLevel.Warning, "catalog: {Count} run(s) left running by processes that no longer exist are now interrupted: {Runs}")]
    public static partial void LeftRunsInterrupted(this ILogger logger, int count, string runs);
}
