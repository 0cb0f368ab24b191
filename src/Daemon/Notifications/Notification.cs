namespace Backupd.Daemon.Notifications;

/// <summary>One message to the operator: the same fields go into the webhook's JSON body and the mail.</summary>
public sealed record Notification(NotifyEvent Event, string Subject, string Text, string? Domain, string? Policy, DateTimeOffset At)
{
    public string Host { get; init; } = Environment.MachineName;
    public string EventName => NotifyTarget.NameOf(Event);
}
