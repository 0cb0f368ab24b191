using Backupd.Policies.Schedules;
using CsCheck;

namespace Backupd.Policies.Tests;

/// <summary>
/// Our cron parser prints the fire times in <c>policy check</c>; Quartz fires the jobs. They must
/// agree: random expressions over the supported grammar, random instants and time zones (with
/// daylight saving, including a 30-minute shift) give the same next fire times in both.
/// </summary>
public class CronDifferentialTests
{
    private static readonly Gen<string> Seconds = Gen.OneOfConst("0", "*/15", "5,35", "10-20/5");
    private static readonly Gen<string> Minutes = Gen.OneOfConst("0", "*/10", "30", "15-45/15", "59");
    private static readonly Gen<string> Hours = Gen.OneOfConst("*", "2", "22-3", "*/6", "0,12", "1-3");
    private static readonly Gen<string> Months = Gen.OneOfConst("*", "JAN", "2-4", "*/3", "11,12", "NOV-FEB", "3,10");
    private static readonly Gen<(string Dom, string Dow)> Days = Gen.OneOf(
        Gen.OneOfConst("*", "1", "15", "L", "LW", "15W", "1-10/3", "31", "L-2", "1W", "29").Select(d => (d, "?")),
        Gen.OneOfConst("*", "MON-FRI", "1", "7", "6#3", "2L", "FRI-MON", "SUN,WED", "1#5").Select(d => ("?", d)));
    // Year fields are left out: when a repeated (fall-back) hour holds the very last reading an
    // expression will ever match, Quartz 4.7.3 answers "never again" instead of the replayed reading
    // (docs/policies.md notes it); everywhere else they agree, and year fields are rare in policies.
    private static readonly Gen<string> Years = Gen.Const("");
    private static readonly Gen<string> Zones = Gen.OneOfConst("UTC", "Europe/Berlin", "America/New_York", "Australia/Lord_Howe", "Asia/Kolkata");

    private static readonly Gen<string> Expressions =
        Gen.Select(Seconds, Minutes, Hours, Days, Months, Years, (s, m, h, d, mo, y) => $"{s} {m} {h} {d.Dom} {mo} {d.Dow}{y}");

    [Fact]
    public void Next_fire_times_agree_with_quartz()
    {
        var start = new DateTimeOffset(2026, 1, 1, 0, 0, 0, TimeSpan.Zero);
        Gen.Select(Expressions, Zones, Gen.Int[0, 3 * 365 * 24 * 60]).Sample((text, zoneId, minutes) =>
        {
            var zone = TimeZoneInfo.FindSystemTimeZoneById(zoneId);
            var after = start.AddMinutes(minutes).AddSeconds(minutes % 60);
            var quartz = new Quartz.CronExpression(text, zone);
            var ours = CronExpression.Parse(text);
            var cursorQ = after;
            var cursorO = after;
            for (var i = 0; i < 4; i++)
            {
                var q = quartz.GetNextValidTimeAfter(cursorQ);
                var o = ours.NextAfter(cursorO, zone);
                Assert.True(q?.UtcTicks == o?.UtcTicks, $"'{text}' in {zoneId} after {cursorO:O}: Quartz {q:O}, ours {o:O}");
                if (q is null) break;
                (cursorQ, cursorO) = (q.Value, o!.Value);
            }
        }, iter: 5000);
    }

    [Fact]
    public void Next_fire_times_agree_with_quartz_around_clock_changes()
    {
        var transitions = new List<(string Zone, DateTimeOffset At)>();
        foreach (var zoneId in new[] { "Europe/Berlin", "America/New_York", "Australia/Lord_Howe" })
        {
            var zone = TimeZoneInfo.FindSystemTimeZoneById(zoneId);
            for (var t = new DateTimeOffset(2026, 1, 1, 0, 0, 0, TimeSpan.Zero); t.Year < 2028; t = t.AddMinutes(30))
                if (zone.GetUtcOffset(t) != zone.GetUtcOffset(t.AddMinutes(30))) transitions.Add((zoneId, t));
        }
        Assert.True(transitions.Count >= 12, $"found only {transitions.Count} clock changes");
        var fixedTimes = Gen.OneOfConst("0 30 2 * * ?", "0 0 2 * * ?", "0 0 3 * * ?", "0 15 1 * * ?", "0 59 1 ? * *", "30 30 2 ? * SUN", "0 45 1,2 * * ?");
        Gen.Select(Gen.OneOf(fixedTimes, Expressions), Gen.Int[0, transitions.Count - 1], Gen.Int[-26 * 60, 2 * 60]).Sample((text, index, minutes) =>
        {
            var (zoneId, at) = transitions[index];
            var zone = TimeZoneInfo.FindSystemTimeZoneById(zoneId);
            var quartz = new Quartz.CronExpression(text, zone);
            var ours = CronExpression.Parse(text);
            var cursorQ = at.AddMinutes(minutes);
            var cursorO = cursorQ;
            for (var i = 0; i < 4; i++)
            {
                var q = quartz.GetNextValidTimeAfter(cursorQ);
                var o = ours.NextAfter(cursorO, zone);
                Assert.True(q?.UtcTicks == o?.UtcTicks, $"'{text}' in {zoneId} after {cursorO:O}: Quartz {q:O}, ours {o:O}");
                if (q is null) break;
                (cursorQ, cursorO) = (q.Value, o!.Value);
            }
        }, iter: 5000);
    }

    [Fact]
    public void Quartz_accepts_every_expression_we_accept()
    {
        Expressions.Sample(text => Assert.True(Quartz.CronExpression.TryParse(text, out _), text), iter: 2000);
    }
}
