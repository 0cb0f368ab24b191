using Backupd.Policies.Schedules;

namespace Backupd.Policies.Model;

/// <summary>When a policy fires: one or more cron expressions, all read in one time zone.</summary>
public sealed record ScheduleDefinition(IReadOnlyList<ScheduleEntry> Entries, string TimeZoneId, TimeZoneInfo TimeZone)
{
    /// <summary>The next <paramref name="count"/> fire times over all entries, merged and de-duplicated.</summary>
    public IReadOnlyList<DateTimeOffset> NextFireTimes(DateTimeOffset after, int count) =>
        Entries.SelectMany(e => e.Cron.NextFireTimes(after, TimeZone, count))
            .DistinctBy(t => t.UtcTicks)
            .OrderBy(t => t.UtcTicks)
            .Take(count)
            .ToList();
}

/// <summary>One schedule line: what the admin wrote and the Quartz cron expression it means.</summary>
public sealed record ScheduleEntry(string Written, CronExpression Cron)
{
    /// <summary>Quartz cron text (equal to <see cref="Written"/> unless a human form was translated).</summary>
    public string CronText => Cron.Text;
}
