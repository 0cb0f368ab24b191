using Backupd.Policies.Model;

namespace Backupd.Policies.Tests;

/// <summary>full-every's decision as a pure function of (backups since the last full read, its time, now): fixed instants only.</summary>
public class FullReadPeriodTests
{
    private static readonly DateTimeOffset LastFull = new(2026, 3, 1, 2, 30, 0, TimeSpan.Zero);

    [Fact]
    public void Days_are_due_from_exactly_K_days_after_the_last_full_read_and_not_a_tick_before()
    {
        var period = FullReadPeriod.EveryDays(14);

        Assert.False(period.IsDue(sinceFull: 50, LastFull, LastFull.AddDays(14).AddTicks(-1)));
        Assert.True(period.IsDue(sinceFull: 0, LastFull, LastFull.AddDays(14)));
        Assert.True(period.IsDue(sinceFull: 0, LastFull, LastFull.AddDays(15)));
        Assert.False(period.IsDue(sinceFull: 0, LastFull, LastFull.AddHours(1)));
    }

    [Fact]
    public void Days_do_not_depend_on_the_offset_the_instants_are_written_in()
    {
        var period = FullReadPeriod.EveryDays(1);
        var berlin = LastFull.AddDays(1).ToOffset(TimeSpan.FromHours(2));

        Assert.True(period.IsDue(0, LastFull, berlin));
        Assert.False(period.IsDue(0, LastFull, berlin.AddSeconds(-1)));
    }

    [Fact]
    public void An_unknown_last_full_read_is_due_so_the_period_is_never_skipped()
    {
        Assert.True(FullReadPeriod.EveryDays(14).IsDue(0, null, LastFull));
        Assert.False(FullReadPeriod.EveryBackups(7).IsDue(0, null, LastFull));
    }

    [Fact]
    public void Backups_are_due_on_the_Nth_backup_whatever_the_time()
    {
        var period = FullReadPeriod.EveryBackups(7);

        Assert.False(period.IsDue(sinceFull: 5, LastFull, LastFull.AddYears(3)));
        Assert.True(period.IsDue(sinceFull: 6, LastFull, LastFull.AddMinutes(1)));
        Assert.True(FullReadPeriod.EveryBackups(1).IsDue(0, LastFull, LastFull));
    }

    [Fact]
    public void Both_forms_are_due_at_whichever_comes_first()
    {
        var period = FullReadPeriod.Either(7, 14);

        Assert.False(period.IsDue(5, LastFull, LastFull.AddDays(13)));
        Assert.True(period.IsDue(6, LastFull, LastFull.AddDays(1)));
        Assert.True(period.IsDue(1, LastFull, LastFull.AddDays(14)));
    }

    [Fact]
    public void Out_of_range_periods_cannot_be_made_and_print_as_a_policy_writes_them()
    {
        Assert.Throws<ArgumentOutOfRangeException>(() => FullReadPeriod.EveryDays(0));
        Assert.Throws<ArgumentOutOfRangeException>(() => FullReadPeriod.EveryBackups(FullReadPeriod.MaxBackups + 1));
        Assert.Equal("14d", FullReadPeriod.EveryDays(14).ToString());
        Assert.Equal("7", FullReadPeriod.Default.ToString());
        Assert.Equal("{backups: 7, days: 14}", FullReadPeriod.Either(7, 14).ToString());
    }
}
