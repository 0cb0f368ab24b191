using Backupd.Policies.Model;

namespace Backupd.Daemon.Scheduling;

/// <summary>
/// Decides the start-up catch-up: a policy whose schedule fired (on paper) while the daemon was
/// down runs once, for the latest missed fire time, if that time is within the grace window.
/// Never more than once, however many fires were missed; never for a policy with no recorded fire
/// (a new policy waits for its first scheduled time).
/// </summary>
public static class MisfirePlanner
{
    public static DateTimeOffset? MissedFire(ScheduleDefinition schedule, DateTimeOffset? lastFire, DateTimeOffset now, TimeSpan grace)
    {
        if (lastFire is null || grace <= TimeSpan.Zero) return null;
        // Fires older than the grace window do not matter: start looking just before it.
        var windowStart = now - grace - TimeSpan.FromSeconds(1);
        var cursor = lastFire.Value > windowStart ? lastFire.Value : windowStart;
        DateTimeOffset? latest = null;
        while (schedule.NextFireTimes(cursor, 1) is [var next] && next <= now)
        {
            latest = next;
            cursor = next;
        }
        return latest is { } t && now - t <= grace ? t : null;
    }
}
