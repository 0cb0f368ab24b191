using Backupd.Daemon.Scheduling;
using Backupd.Policies.Loading;
using Microsoft.Extensions.Logging.Abstractions;

namespace Backupd.Daemon.Tests.Scheduling;

/// <summary>The real Quartz scheduler driving a fake runner: fires, reloads, catch-up and graceful stop.</summary>
// Disposed through IAsyncLifetime: xunit v2 never calls IAsyncDisposable.DisposeAsync on a test class, so with that
// alone every test's Quartz scheduler (firing 'every 1s') stayed alive for the rest of the test run.
public sealed class QuartzSchedulerTests : IAsyncLifetime, IAsyncDisposable
{
    private readonly FakeRunner _runner = new();
    private readonly FakeDomains _domains = new("vm1", "vm2");
    private readonly RunGate _gate = new(2);
    private readonly ScheduleState _state = ScheduleState.InMemory();
    private readonly PolicyScheduler _scheduler;
    private readonly FakeVerifier _verifier = new();

    public QuartzSchedulerTests()
    {
        var dispatcher = new PolicyDispatcher(_runner, _domains, _gate, "qemu:///system", _state, NullLogger.Instance) { Verifier = _verifier };
        _scheduler = new PolicyScheduler(dispatcher, _state, TimeSpan.FromHours(1), NullLogger.Instance);
    }

    public Task InitializeAsync() => Task.CompletedTask;

    Task IAsyncLifetime.DisposeAsync() => DisposeAsync().AsTask();

    public async ValueTask DisposeAsync()
    {
        await _scheduler.DisposeAsync();
        _gate.Dispose();
    }

    private static PolicyFileResult File(string yaml) => PolicyLoader.ParseText(yaml, "/p/a.yaml");

    private static Task WaitUntil(Func<bool> condition, TimeSpan timeout, string what) => Wait.Until(condition, timeout, what);

    /// <summary>A daily schedule (UTC) whose fire is half a day away, so it cannot fire while a test runs, whatever the time of day.</summary>
    private static string DailyFarFromNow() => $"daily {DateTimeOffset.UtcNow.AddHours(12):HH:mm}";

    [Fact]
    public void Triggers_carry_the_policy_schedule_and_time_zone()
    {
        var policy = TestPolicies.One("name: web\ndomains: [w]\nrepository: /r\nschedule: {cron: [daily 02:30, weekly sun 04:00], time-zone: Europe/Berlin}\n");
        var (job, triggers) = PolicyTriggers.Build(policy, TimeSpan.FromHours(6));
        Assert.Equal("web", job.Key.Name);
        Assert.Equal(["web#0", "web#1"], triggers.Select(t => t.Key.Name));
        Assert.Null(PolicyTriggers.BuildVerify(policy));
        // The trigger starts when it is built, so the instant asked about is relative to that start:
        // a fixed date would be before the start on every later day (the verdict depended on the day).
        var start = triggers.First().StartTimeUtc;
        foreach (var days in new[] { 1, 45, 200 })
        {
            var after = start.AddDays(days);
            var fire = triggers.First().GetFireTimeAfter(after);
            Assert.NotNull(fire);
            // Quartz's own next fire time equals what `policy check` prints ...
            Assert.Equal(policy.Schedule.Entries[0].Cron.NextAfter(after, policy.Schedule.TimeZone), fire);
            // ... and it is 02:30 on the Berlin wall clock, in summer and winter time alike, within a day
            // (on the spring-forward day 02:30 does not exist: only the "within a day" holds then).
            var zone = policy.Schedule.TimeZone;
            var local = TimeZoneInfo.ConvertTime(fire!.Value, zone);
            if (!zone.IsInvalidTime(local.Date + new TimeSpan(2, 30, 0)))
                Assert.Equal(new TimeSpan(2, 30, 0), local.TimeOfDay);
            Assert.InRange(fire.Value - after, TimeSpan.Zero, TimeSpan.FromHours(25));
        }
    }

    [Fact]
    public async Task A_policy_fires_on_schedule_for_each_domain()
    {
        await _scheduler.StartAsync(default);
        await _scheduler.ApplyAsync([File(TestPolicies.Yaml("fast", "[vm1, vm2]", "every 1s", maxParallel: 2))], default);
        await WaitUntil(() => _runner.CountFor("vm1") >= 2 && _runner.CountFor("vm2") >= 2, TimeSpan.FromSeconds(15), "two fires");
        Assert.Equal(1, _runner.MaxPerDomain);
        Assert.NotNull(_state.LastFire("fast"));
        Assert.NotNull(await _scheduler.NextFireAsync("fast", default));
    }

    [Fact]
    public async Task A_broken_reload_keeps_the_old_schedule_and_a_removal_stops_it()
    {
        await _scheduler.StartAsync(default);
        await _scheduler.ApplyAsync([File(TestPolicies.Yaml("fast", "[vm1]", "every 1s"))], default);
        await WaitUntil(() => _runner.CountFor("vm1") >= 1, TimeSpan.FromSeconds(15), "the first fire");

        var broken = await _scheduler.ApplyAsync([File("name: fast\ndomains: [vm1]\nschedule: every 7m\nrepository: /srv/r\n")], default);
        Assert.Equal(["/p/a.yaml"], broken.KeptPreviousVersion);
        var before = _runner.CountFor("vm1");
        await WaitUntil(() => _runner.CountFor("vm1") >= before + 2, TimeSpan.FromSeconds(15), "fires after a broken reload");

        var removed = await _scheduler.ApplyAsync([], default);
        Assert.Equal(["fast"], removed.Removed);
        Assert.Null(await _scheduler.NextFireAsync("fast", default));
        await Task.Delay(300); // a fire already started may still finish
        var settled = _runner.CountFor("vm1");
        await Task.Delay(2500);
        Assert.Equal(settled, _runner.CountFor("vm1"));
    }

    [Fact]
    public async Task A_changed_schedule_is_rescheduled()
    {
        await _scheduler.StartAsync(default);
        await _scheduler.ApplyAsync([File(TestPolicies.Yaml("p", "[vm1]", DailyFarFromNow()))], default);
        var daily = await _scheduler.NextFireAsync("p", default);
        var outcome = await _scheduler.ApplyAsync([File(TestPolicies.Yaml("p", "[vm1]", "every 1s"))], default);
        Assert.Equal(["p"], outcome.Changed);
        var fast = await _scheduler.NextFireAsync("p", default);
        Assert.True(fast < daily, $"{fast} should be before {daily}");
        await WaitUntil(() => _runner.CountFor("vm1") >= 1, TimeSpan.FromSeconds(15), "a fire on the new schedule");
    }

    [Fact]
    public async Task A_fire_missed_while_down_runs_once_at_start_up()
    {
        _state.RecordFire("nightly", DateTimeOffset.UtcNow.AddDays(-1).AddMinutes(-1));
        await _scheduler.StartAsync(default);
        // A daily time ten minutes ago has fired (on paper) inside the one-hour grace, and fires next in ~24 h:
        // neither Quartz nor a second CatchUp can find another fire while the test runs (unlike 'every 30m'
        // run at hh:29:59 or hh:59:59).
        var missed = DateTimeOffset.UtcNow.AddMinutes(-10);
        missed = new DateTimeOffset(missed.Year, missed.Month, missed.Day, missed.Hour, missed.Minute, 0, TimeSpan.Zero);
        await _scheduler.ApplyAsync([File(TestPolicies.Yaml("nightly", "[vm1]", $"daily {missed:HH:mm}"))], default);
        var due = _scheduler.CatchUp(DateTimeOffset.UtcNow);
        Assert.Equal(("nightly", missed), Assert.Single(due));
        await WaitUntil(() => _runner.CountFor("vm1") == 1, TimeSpan.FromSeconds(10), "the catch-up run");
        Assert.Empty(_scheduler.CatchUp(DateTimeOffset.UtcNow)); // recorded: not caught up twice
    }

    [Fact]
    public async Task A_verify_schedule_runs_the_verifier_on_its_own_times()
    {
        await _scheduler.StartAsync(default);
        var daily = DailyFarFromNow();
        await _scheduler.ApplyAsync([File($"name: v\ndomains: [vm1]\nschedule: {daily}\nrepository: /srv/r\nverify: {{schedule: every 1s}}\n")], default);
        await WaitUntil(() => _verifier.Calls.Count >= 2, TimeSpan.FromSeconds(15), "two verify fires");
        Assert.Empty(_runner.Calls); // the backup schedule (daily) did not fire
        Assert.All(_verifier.Calls, name => Assert.Equal("v", name));

        // Dropping verify.schedule unschedules the verify job.
        await _scheduler.ApplyAsync([File($"name: v\ndomains: [vm1]\nschedule: {daily}\nrepository: /srv/r\n")], default);
        await Task.Delay(300);
        var settled = _verifier.Calls.Count;
        await Task.Delay(2000);
        Assert.Equal(settled, _verifier.Calls.Count);
    }

    [Fact]
    public async Task Stop_cancels_running_backups_and_waits_for_them()
    {
        _runner.Duration = TimeSpan.FromMinutes(5);
        await _scheduler.StartAsync(default);
        await _scheduler.ApplyAsync([File(TestPolicies.Yaml("slow", "[vm1]", "every 1s"))], default);
        await WaitUntil(() => _runner.CountFor("vm1") >= 1, TimeSpan.FromSeconds(15), "a running backup");
        await _scheduler.StopAsync().WaitAsync(TimeSpan.FromSeconds(20));
        Assert.Equal(["vm1"], _runner.CancelledRuns);
        Assert.Equal(0, _gate.ClaimedDomains);
        var calls = _runner.Calls.Count;
        await Task.Delay(1500);
        Assert.Equal(calls, _runner.Calls.Count);
    }
}
