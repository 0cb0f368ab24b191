using Microsoft.Extensions.Logging;

namespace Backupd.Daemon.Cli;

/// <summary>Logging for one-shot commands: everything to stderr, so stdout stays the result (or JSON).</summary>
public static class CliLogging
{
    public static ILoggerFactory Create() => LoggerFactory.Create(builder => builder
        .SetMinimumLevel(LogLevel.Information)
        .AddConsole(o => o.LogToStandardErrorThreshold = LogLevel.Trace)
        .AddSimpleConsole(o =>
        {
            o.SingleLine = true;
            o.TimestampFormat = "HH:mm:ss.fff ";
        }));
}
