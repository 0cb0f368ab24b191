using System.Globalization;
using Backupd.Policies.Schedules;

namespace Backupd.Policies.Tests;

public class CronExpressionTests
{
    private static readonly DateTimeOffset After = new(2026, 11, 26, 12, 0, 0, TimeSpan.Zero); // a Thursday

    private static string[] Next(string cron, int count = 3, string zone = "UTC", DateTimeOffset? after = null) =>
        CronExpression.Parse(cron).NextFireTimes(after ?? After, TimeZoneInfo.FindSystemTimeZoneById(zone), count)
            .Select(t => t.ToString("yyyy-MM-dd HH:mm:ss zzz", CultureInfo.InvariantCulture)).ToArray();

    [Theory]
    [InlineData("0 30 2 * * ?", "2026-11-27 02:30:00 +00:00", "2026-11-28 02:30:00 +00:00", "2026-11-29 02:30:00 +00:00")]
    [InlineData("0 0 12 ? * MON-FRI", "2026-11-27 12:00:00 +00:00", "2026-11-30 12:00:00 +00:00", "2026-12-01 12:00:00 +00:00")]
    [InlineData("0 0 0 L * ?", "2026-11-30 00:00:00 +00:00", "2026-12-31 00:00:00 +00:00", "2027-01-31 00:00:00 +00:00")]
    [InlineData("0 0 0 L-1 * ?", "2026-11-29 00:00:00 +00:00", "2026-12-30 00:00:00 +00:00", "2027-01-30 00:00:00 +00:00")]
    [InlineData("0 0 0 LW * ?", "2026-11-30 00:00:00 +00:00", "2026-12-31 00:00:00 +00:00", "2027-01-29 00:00:00 +00:00")]
    [InlineData("0 0 0 15W * ?", "2026-12-15 00:00:00 +00:00", "2027-01-15 00:00:00 +00:00", "2027-02-15 00:00:00 +00:00")]
    [InlineData("0 0 0 1W * ?", "2026-12-01 00:00:00 +00:00", "2027-01-01 00:00:00 +00:00", "2027-02-01 00:00:00 +00:00")]
    [InlineData("0 0 0 ? * 6#3", "2026-12-18 00:00:00 +00:00", "2027-01-15 00:00:00 +00:00", "2027-02-19 00:00:00 +00:00")]
    [InlineData("0 0 0 ? * MONL", "2026-11-30 00:00:00 +00:00", "2026-12-28 00:00:00 +00:00", "2027-01-25 00:00:00 +00:00")]
    [InlineData("0 0 22-1 * * ?", "2026-11-26 22:00:00 +00:00", "2026-11-26 23:00:00 +00:00", "2026-11-27 00:00:00 +00:00")]
    [InlineData("*/20 * * * * ?", "2026-11-26 12:00:20 +00:00", "2026-11-26 12:00:40 +00:00", "2026-11-26 12:01:00 +00:00")]
    [InlineData("0 15/20 * * * ?", "2026-11-26 12:15:00 +00:00", "2026-11-26 12:35:00 +00:00", "2026-11-26 12:55:00 +00:00")]
    [InlineData("0 0 2 1 JAN,JUL ? 2027-2028", "2027-01-01 02:00:00 +00:00", "2027-07-01 02:00:00 +00:00", "2028-01-01 02:00:00 +00:00")]
    [InlineData("0 0 0 ? * FRI-MON", "2026-11-27 00:00:00 +00:00", "2026-11-28 00:00:00 +00:00", "2026-11-29 00:00:00 +00:00")]
    public void Next_fire_times(string cron, string first, string second, string third) =>
        Assert.Equal([first, second, third], Next(cron));

    [Fact]
    public void The_fire_time_is_strictly_after_the_given_instant() =>
        Assert.Equal(["2026-11-26 12:00:01 +00:00"], Next("* * * * * ?", 1));

    [Fact]
    public void A_date_that_never_comes_has_no_fire_time() =>
        Assert.Empty(Next("0 0 0 30 FEB ?"));

    [Fact]
    public void Reads_fields_in_the_time_zone()
    {
        Assert.Equal(["2026-11-27 02:30:00 +01:00", "2026-11-28 02:30:00 +01:00"], Next("0 30 2 * * ?", 2, "Europe/Berlin"));
        Assert.Equal(["2026-11-27 02:30:00 +05:30"], Next("0 30 2 * * ?", 1, "Asia/Kolkata"));
    }

    [Fact]
    public void A_wall_clock_time_skipped_by_daylight_saving_fires_when_the_clocks_jump()
    {
        // Berlin jumps from 02:00 to 03:00 on 2026-03-29: 02:30 fires at 03:00, as Quartz does.
        var after = new DateTimeOffset(2026, 3, 28, 12, 0, 0, TimeSpan.Zero);
        Assert.Equal(["2026-03-29 03:00:00 +02:00", "2026-03-30 02:30:00 +02:00"], Next("0 30 2 * * ?", 2, "Europe/Berlin", after));
        // Every reading of the gap fires once, together with 03:00 itself.
        Assert.Equal(["2026-03-29 01:45:00 +01:00", "2026-03-29 03:00:00 +02:00", "2026-03-29 03:15:00 +02:00"],
            Next("0 */15 * * * ?", 3, "Europe/Berlin", new DateTimeOffset(2026, 3, 29, 0, 30, 0, TimeSpan.Zero)));
    }

    [Fact]
    public void A_repeated_wall_clock_time_fires_once_unless_the_expression_is_an_interval()
    {
        // Berlin goes back from 03:00 to 02:00 on 2026-10-25: 02:30 happens twice. As in Quartz, a time
        // of day fires at the first occurrence only; an interval (here 2-3 in hours) fires at both.
        var after = new DateTimeOffset(2026, 10, 24, 12, 0, 0, TimeSpan.Zero);
        Assert.Equal(["2026-10-25 02:30:00 +02:00", "2026-10-26 02:30:00 +01:00"], Next("0 30 2 * * ?", 2, "Europe/Berlin", after));
        Assert.Equal(["2026-10-25 02:30:00 +02:00", "2026-10-25 02:30:00 +01:00", "2026-10-25 03:30:00 +01:00"], Next("0 30 2-3 * * ?", 3, "Europe/Berlin", after));
    }

    [Theory]
    [InlineData("hourly", "0 0 * * * ?")]
    [InlineData("hourly :15", "0 15 * * * ?")]
    [InlineData("daily", "0 0 0 * * ?")]
    [InlineData("daily 02:30", "0 30 2 * * ?")]
    [InlineData("Daily 2:05", "0 5 2 * * ?")]
    [InlineData("weekly", "0 0 0 ? * MON")]
    [InlineData("weekly sat,sun 04:00", "0 0 4 ? * SAT,SUN")]
    [InlineData("monthly", "0 0 0 1 * ?")]
    [InlineData("monthly 15 03:00", "0 0 3 15 * ?")]
    [InlineData("monthly last 23:00", "0 0 23 L * ?")]
    [InlineData("every 5s", "*/5 * * * * ?")]
    [InlineData("every 15m", "0 */15 * * * ?")]
    [InlineData("every 6h", "0 0 */6 * * ?")]
    public void Human_forms_translate_to_cron(string human, string cron)
    {
        Assert.True(HumanSchedule.IsHumanForm(human));
        Assert.True(HumanSchedule.TryTranslate(human, out var translated, out var error), error);
        Assert.Equal(cron, translated);
        Assert.True(CronExpression.TryParse(translated, out _, out _));
    }

    [Theory]
    [InlineData("0 0 2 * *", 0, "expected 6 or 7 fields (seconds minutes hours day-of-month month day-of-week [year]), found 5")]
    [InlineData("0 0 2 1-40 * ?", 8, "day-of-month field '1-40': '40' is not valid here; expected a number 1-31, '*', a range 'a-b', a list 'a,b' or a step 'a/n'")]
    [InlineData("0 0 2,, * * ?", 6, "hours field '2,,': empty list item; expected a number 0-23, '*', a range 'a-b', a list 'a,b' or a step 'a/n'")]
    [InlineData("0 0 2 ? * MON 2027-2026", 19, "year field '2027-2026': year range 2027-2026 runs backwards")]
    [InlineData("0 0 2 ? * MON/9", 14, "day-of-week field 'MON/9': step '9' must be a whole number from 1 to 7")]
    public void Syntax_errors_point_at_the_character(string cron, int offset, string message)
    {
        Assert.False(CronExpression.TryParse(cron, out _, out var error));
        Assert.Equal(new CronError(offset, message), error);
    }
}
