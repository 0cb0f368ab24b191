using Microsoft.Extensions.Logging;

namespace Backupd.Daemon.Notifications;

/// <summary>Log messages of notifications (event ids 9100-9199 of the 9000 block).</summary>
internal static partial class NotificationsLog
{
    [LoggerMessage(9100, LogLevel.Information, "notify {Target}: sent {Event} for {Subject}")]
    public static partial void NotificationSent(this ILogger log, string target, string @event, string subject);

    [LoggerMessage(9101, LogLevel.Error, "notify {Target}: {Event} for {Subject} could not be delivered")]
    public static partial void NotificationFailed(this ILogger log, string target, string @event, string subject, Exception error);

    [LoggerMessage(9102, LogLevel.Warning, "notify {Target}: attempt {Attempt} failed, retrying in {Delay}")]
    public static partial void NotificationRetry(this ILogger log, string target, int attempt, TimeSpan delay, Exception error);
}
