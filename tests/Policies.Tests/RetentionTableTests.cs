using System.Globalization;
using Backupd.Policies.Retention;

namespace Backupd.Policies.Tests;

/// <summary>
/// Cases written from the Proxmox Backup Server prune documentation: "if there is more than one
/// backup for a single day, only the latest is kept", "days without backups do not count",
/// "the next option does not take care of already covered backups; it will only consider older
/// backups", "weeks start on Monday … ISO week date system … weeks at the end of the year".
/// </summary>
public class RetentionTableTests
{
    private static readonly DateTimeOffset Now = At("2026-11-26 12:00");

    private static DateTimeOffset At(string text) =>
        DateTimeOffset.ParseExact(text, "yyyy-MM-dd HH:mm", CultureInfo.InvariantCulture, DateTimeStyles.AssumeUniversal);

    private static RetentionPoint P(string time) => new(time, At(time));

    private static string[] Kept(IEnumerable<RetentionPoint> points, RetentionRules rules) =>
        RetentionPlanner.Plan(points, rules, Now).Where(d => d.Keep).Select(d => d.Point.Id).ToArray();

    [Fact]
    public void Keep_last_keeps_the_newest_n()
    {
        var points = new[] { "2026-11-22 02:00", "2026-11-23 02:00", "2026-11-24 02:00", "2026-11-25 02:00", "2026-11-26 02:00" }.Select(P);
        Assert.Equal(["2026-11-26 02:00", "2026-11-25 02:00", "2026-11-24 02:00"], Kept(points, new RetentionRules(Last: 3)));
    }

    [Fact]
    public void Keep_daily_keeps_only_the_latest_of_each_day()
    {
        var points = new[] { "2026-11-23 02:00", "2026-11-23 14:00", "2026-11-24 02:00", "2026-11-24 14:00", "2026-11-25 02:00", "2026-11-25 14:00" }.Select(P);
        Assert.Equal(["2026-11-25 14:00", "2026-11-24 14:00"], Kept(points, new RetentionRules(Daily: 2)));
    }

    [Fact]
    public void Days_without_backups_do_not_count()
    {
        var points = new[] { "2026-11-01 02:00", "2026-11-02 02:00", "2026-11-05 02:00", "2026-11-09 02:00" }.Select(P);
        Assert.Equal(["2026-11-09 02:00", "2026-11-05 02:00", "2026-11-02 02:00"], Kept(points, new RetentionRules(Daily: 3)));
    }

    [Fact]
    public void A_later_rule_only_considers_periods_not_covered_by_an_earlier_one()
    {
        // Six-hourly backups from the 23rd 06:00 to the 26th 00:00. keep-last takes the two newest
        // (26th 00:00 and 25th 18:00), so keep-daily skips the 26th and the 25th (already covered)
        // and keeps the newest of the 24th and of the 23rd.
        var points = Enumerable.Range(0, 12).Select(i => new RetentionPoint($"p{i}", At("2026-11-23 06:00").AddHours(6 * i))).ToList();
        Assert.Equal(["p11", "p10", "p6", "p2"], Kept(points, new RetentionRules(Last: 2, Daily: 2)));
    }

    [Fact]
    public void Weeks_start_on_monday()
    {
        var points = new[] { "2026-11-21 02:00", "2026-11-22 02:00", "2026-11-23 02:00" }.Select(P); // Sat, Sun, Mon
        Assert.Equal(["2026-11-23 02:00", "2026-11-22 02:00"], Kept(points, new RetentionRules(Weekly: 5)));
    }

    [Fact]
    public void Iso_weeks_span_the_turn_of_the_year()
    {
        // 2020-12-31 (Thu), 2021-01-01 (Fri) and 2021-01-03 (Sun) are all in ISO week 2020-W53.
        var points = new[] { "2020-12-28 02:00", "2020-12-31 02:00", "2021-01-01 02:00", "2021-01-03 02:00", "2021-01-04 02:00" }.Select(P).ToList();
        var plan = RetentionPlanner.Plan(points, new RetentionRules(Weekly: 2), Now);
        Assert.Equal(["2021-01-04 02:00", "2021-01-03 02:00"], plan.Where(d => d.Keep).Select(d => d.Point.Id));
        Assert.Equal("keep-weekly: newest point of ISO week 2020-W53 (2 of 2)", plan.Single(d => d.Point.Id == "2021-01-03 02:00").Reason);
    }

    [Fact]
    public void Monthly_and_yearly_take_the_newest_of_their_period()
    {
        var points = new[] { "2024-06-01 02:00", "2024-12-31 02:00", "2025-03-01 02:00", "2025-03-31 02:00", "2025-12-01 02:00" }.Select(P);
        Assert.Equal(["2025-12-01 02:00", "2025-03-31 02:00", "2024-12-31 02:00"], Kept(points, new RetentionRules(Monthly: 2, Yearly: 2)));
    }

    [Fact]
    public void A_year_of_daily_backups_with_last_daily_weekly_monthly()
    {
        var points = Enumerable.Range(0, 365).Select(i => new RetentionPoint($"{At("2026-11-26 02:00").AddDays(-i):yyyy-MM-dd}", At("2026-11-26 02:00").AddDays(-i))).ToList();
        var kept = Kept(points, new RetentionRules(Last: 1, Daily: 7, Weekly: 4, Monthly: 6));
        Assert.Equal(
        [
            "2026-11-26", // last
            "2026-11-25", "2026-11-24", "2026-11-23", "2026-11-22", "2026-11-21", "2026-11-20", "2026-11-19", // daily (W48 and W47 now covered)
            "2026-11-15", "2026-11-08", "2026-11-01", "2026-10-25", // weekly: Sundays of W46..W43 (Nov and Oct now covered)
            "2026-09-30", "2026-08-31", "2026-07-31", "2026-06-30", "2026-05-31", "2026-04-30", // monthly
        ], kept);
    }

    [Fact]
    public void Every_decision_says_why()
    {
        var points = new[] { "2026-11-25 02:00", "2026-11-25 14:00", "2026-11-20 02:00" }.Select(P).ToList();
        var plan = RetentionPlanner.Plan(points, new RetentionRules(Daily: 1), Now);
        Assert.Equal("keep-daily: newest point of day 2026-11-25 (1 of 1)", plan[0].Reason);
        Assert.Equal("keep-daily: day 2026-11-25 keeps a newer point (2026-11-25 14:00)", plan[1].Reason);
        Assert.Equal("not selected by any rule (keep-daily 1)", plan[2].Reason);
        Assert.Equal([true, false, false], plan.Select(d => d.Keep));
    }

    [Fact]
    public void No_rule_keeps_everything()
    {
        var points = new[] { "2026-11-25 02:00", "2020-01-01 02:00" }.Select(P);
        Assert.All(RetentionPlanner.Plan(points, RetentionRules.KeepAll, Now), d => Assert.True(d.Keep));
    }

    [Fact]
    public void Points_newer_than_now_are_kept_and_do_not_count()
    {
        var points = new[] { "2026-11-27 02:00", "2026-11-26 02:00", "2026-11-25 02:00" }.Select(P);
        Assert.Equal(["2026-11-27 02:00", "2026-11-26 02:00"], Kept(points, new RetentionRules(Last: 1)));
    }

    [Fact]
    public void Periods_are_calendar_periods_of_the_given_zone()
    {
        // 23:30 UTC on the 24th is already the 25th in Berlin: same Berlin day as 10:00 UTC on the 25th.
        var points = new[] { "2026-11-24 23:30", "2026-11-25 10:00" }.Select(P).ToList();
        var berlin = TimeZoneInfo.FindSystemTimeZoneById("Europe/Berlin");
        Assert.Single(RetentionPlanner.Plan(points, new RetentionRules(Daily: 5), Now, berlin), d => d.Keep);
        Assert.Equal(2, RetentionPlanner.Plan(points, new RetentionRules(Daily: 5), Now).Count(d => d.Keep));
    }

    [Fact]
    public void Duplicate_ids_are_refused()
    {
        var e = Assert.Throws<ArgumentException>(() => RetentionPlanner.Plan([P("2026-11-25 02:00"), P("2026-11-25 02:00")], new RetentionRules(Last: 1), Now));
        Assert.StartsWith("restore point id '2026-11-25 02:00' appears twice", e.Message);
    }
}
