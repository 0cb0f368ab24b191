using Microsoft.Extensions.Logging;

namespace Backupd.Daemon.Web;

/// <summary>Log messages of the HTTP listener (event ids 9200-9299 of the 9000 block).</summary>
internal static partial class WebLog
{
    [LoggerMessage(9200, LogLevel.Information, "http: serving metrics, status page and JSON API on http://{Endpoint}/ ({Auth})")]
    public static partial void Listening(this ILogger log, string endpoint, string auth);

    [LoggerMessage(9201, LogLevel.Warning, "http: request {Path} failed")]
    public static partial void RequestFailed(this ILogger log, string path, Exception error);
}
