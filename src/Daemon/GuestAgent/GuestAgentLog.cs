using Microsoft.Extensions.Logging;

namespace Backupd.Daemon.GuestAgent;

/// <summary>Log messages of the guest-agent guard (event ids 11000-11099; drills use 11100+).</summary>
internal static partial class GuestAgentLog
{
    [LoggerMessage(11000, LogLevel.Warning, "{Domain}: cannot bound the guest agent's response time to {Seconds} s")]
    public static partial void TimeoutNotSet(ILogger logger, string domain, double seconds, Exception exception);

    [LoggerMessage(11001, LogLevel.Warning, "{Domain}: {Reason}")]
    public static partial void AgentNotAnswering(ILogger logger, string domain, string reason);

    [LoggerMessage(11002, LogLevel.Warning, "{Domain}: the guest's file systems were still frozen after a failed quiesce; thawed them (attempt {Attempt})")]
    public static partial void Thawed(ILogger logger, string domain, int attempt);

    [LoggerMessage(11003, LogLevel.Error, "{Domain}: could not confirm the guest's file systems are thawed after a failed quiesce ({Problem}); `backupd recover` and the next backup of it try again")]
    public static partial void ThawUnconfirmed(ILogger logger, string domain, string problem);

    [LoggerMessage(11004, LogLevel.Warning, "{Domain}: thaw attempt {Attempt} failed")]
    public static partial void ThawAttemptFailed(ILogger logger, string domain, int attempt, Exception exception);

    [LoggerMessage(11005, LogLevel.Warning, "{Domain}: could not record the quiesce outcome in the catalog")]
    public static partial void QuiesceNotRecorded(ILogger logger, string domain, Exception exception);

    // The level is the caller's: a domain defined without an agent channel is a choice (Information), an agent that
    // is absent or does not answer although the channel exists is a problem (Warning).
    [LoggerMessage(EventId = 11006, EventName = "NotQuiescing", Message = "{Domain}: not quiescing: {Reason}; taking a crash-consistent snapshot")]
    public static partial void NotQuiescing(ILogger logger, LogLevel level, string domain, string reason);
}
