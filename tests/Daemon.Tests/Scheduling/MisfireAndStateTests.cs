using Backupd.Daemon.Scheduling;

namespace Backupd.Daemon.Tests.Scheduling;

public sealed class MisfireAndStateTests : IDisposable
{
    private static readonly DateTimeOffset Now = new(2026, 11, 26, 12, 0, 30, TimeSpan.Zero);
    private readonly string _dir = Directory.CreateTempSubdirectory("bkd-state-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    private static DateTimeOffset? Missed(string schedule, DateTimeOffset? last, TimeSpan grace) =>
        MisfirePlanner.MissedFire(TestPolicies.One(TestPolicies.Yaml("p", "[a]", schedule)).Schedule, last, Now, grace);

    [Fact]
    public void The_latest_missed_fire_within_grace_runs_once() =>
        // Last fire 09:00; 10:00, 11:00 and 12:00 were missed: one catch-up, for 12:00.
        Assert.Equal(new DateTimeOffset(2026, 11, 26, 12, 0, 0, TimeSpan.Zero), Missed("hourly", Now.AddHours(-3).AddSeconds(-30), TimeSpan.FromHours(6)));

    [Fact]
    public void A_missed_fire_older_than_the_grace_window_is_dropped() =>
        Assert.Null(Missed("daily 02:00", new DateTimeOffset(2026, 11, 25, 2, 0, 0, TimeSpan.Zero), TimeSpan.FromHours(6)));

    [Fact]
    public void Nothing_missed_when_the_last_fire_is_the_latest() =>
        Assert.Null(Missed("hourly", new DateTimeOffset(2026, 11, 26, 12, 0, 0, TimeSpan.Zero), TimeSpan.FromHours(6)));

    [Fact]
    public void No_history_means_no_catch_up() =>
        Assert.Null(Missed("hourly", null, TimeSpan.FromHours(6)));

    [Fact]
    public void Zero_grace_disables_catch_up() =>
        Assert.Null(Missed("hourly", Now.AddHours(-3), TimeSpan.Zero));

    [Fact]
    public void A_fast_schedule_over_a_long_outage_stays_cheap()
    {
        var missed = Missed("every 1s", Now.AddDays(-30), TimeSpan.FromHours(6));
        Assert.Equal(Now, missed);
    }

    [Fact]
    public void State_survives_a_restart_and_a_corrupt_file_means_no_history()
    {
        var state = ScheduleState.Load(_dir);
        var at = new DateTimeOffset(2026, 11, 26, 2, 0, 0, TimeSpan.Zero);
        state.RecordFire("web", at);
        state.RecordFire("web", at.AddHours(-1)); // older fires never move the record back
        Assert.Equal(at, ScheduleState.Load(_dir).LastFire("web"));
        File.WriteAllText(Path.Combine(_dir, ScheduleState.FileName), "{not json");
        Assert.Null(ScheduleState.Load(_dir).LastFire("web"));
    }
}
