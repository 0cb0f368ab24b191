using Microsoft.Extensions.Logging;

namespace Backupd.Daemon.Hosting;

/// <summary>Every log line of the daemon host (start-up, stop). Event ids 4000-4999, stable.</summary>
internal static partial class HostingLog
{
    [LoggerMessage(EventId = 4001, EventName = "CatalogMigrated", Level = LogLevel.Information, Message = "catalog: applied migrations {Versions}; schema version {Version}")]
    public static partial void CatalogMigrated(this ILogger logger, string versions, int version);

    [LoggerMessage(EventId = 4002, EventName = "DaemonStarted", Level = LogLevel.Information, Message = "backupd daemon started (config {Config}, libvirt {Uri}, state {State})")]
    public static partial void DaemonStarted(this ILogger logger, string config, string uri, string state);

    [LoggerMessage(EventId = 4003, EventName = "DaemonStopping", Level = LogLevel.Information, Message = "backupd daemon stopping")]
    public static partial void DaemonStopping(this ILogger logger);
}
