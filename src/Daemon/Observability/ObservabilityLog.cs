using Microsoft.Extensions.Logging;

namespace Backupd.Daemon.Observability;

/// <summary>Log messages of metrics, notifications and the web listener (event ids 9000-9999).</summary>
internal static partial class ObservabilityLog
{
    [LoggerMessage(9000, LogLevel.Warning, "metrics: the catalog could not be read for a scrape; catalog gauges keep their last values and backupd_catalog_up is 0")]
    public static partial void CatalogScrapeFailed(this ILogger log, Exception error);

    [LoggerMessage(9001, LogLevel.Information, "run of {Domain}: {Step} {Percent:0}% ({Bytes} of {Total} bytes)")]
    public static partial void ProgressLine(this ILogger log, string domain, string step, double percent, long bytes, long total);
}
