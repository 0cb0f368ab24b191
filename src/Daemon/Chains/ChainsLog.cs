using Microsoft.Extensions.Logging;

namespace Backupd.Daemon.Chains;

/// <summary>Log messages of chain maintenance (event ids 8000-8999).</summary>
internal static partial class ChainsLog
{
    [LoggerMessage(8000, LogLevel.Information, "{Operation} of {Domain} disk {Target}: {Plan}")]
    public static partial void Planned(ILogger logger, string operation, string domain, string target, string plan);

    [LoggerMessage(8001, LogLevel.Information, "{Domain} disk {Target}: {Job} job started")]
    public static partial void JobStarted(ILogger logger, string domain, string target, string job);

    [LoggerMessage(8002, LogLevel.Information, "{Domain} disk {Target}: job done, now on {Active} (depth {Depth})")]
    public static partial void JobDone(ILogger logger, string domain, string target, string active, int depth);

    [LoggerMessage(8003, LogLevel.Information, "persistent definition of {Domain} now has disk {Target} on {Active}")]
    public static partial void Redefined(ILogger logger, string domain, string target, string active);

    [LoggerMessage(8004, LogLevel.Information, "deleted {Path}: merged away or moved, and no definition names it")]
    public static partial void Deleted(ILogger logger, string path);

    [LoggerMessage(8005, LogLevel.Information, "kept {Path}: {Reason}")]
    public static partial void Kept(ILogger logger, string path, string reason);

    [LoggerMessage(8006, LogLevel.Warning, "recovery of chain operation {Id} ({Domain} disk {Target}): {Action}")]
    public static partial void Recovered(ILogger logger, string id, string domain, string target, string action);

    [LoggerMessage(8007, LogLevel.Error, "chain operation {Id} on {Domain} failed")]
    public static partial void Failed(ILogger logger, Exception exception, string id, string domain);

    [LoggerMessage(8008, LogLevel.Warning, "catalog record of chain run {RunId} could not be written")]
    public static partial void CatalogFailed(ILogger logger, Exception exception, long runId);

    [LoggerMessage(8009, LogLevel.Warning, "policy chain maintenance of {Domain} disk {Target} not done: {Reason}")]
    public static partial void PolicyRefused(ILogger logger, string domain, string target, string reason);
}
