using Backupd.Daemon.Scheduling;
using Microsoft.Extensions.Logging.Abstractions;

namespace Backupd.Daemon.Tests.Scheduling;

public sealed class DispatcherTests : IDisposable
{
    private readonly RunGate _gate;
    private readonly FakeRunner _runner = new();
    private readonly FakeDomains _domains = new("web-1", "web-2", "web-3", "web-4", "web-5", "db-1");
    private readonly PolicyDispatcher _dispatcher;

    public DispatcherTests()
    {
        _gate = new RunGate(3);
        _dispatcher = new PolicyDispatcher(_runner, _domains, _gate, "qemu:///system", ScheduleState.InMemory(), NullLogger.Instance);
    }

    public void Dispose() => _gate.Dispose();

    [Fact]
    public async Task A_fire_backs_up_every_selected_domain_once()
    {
        // Runs are held until two are in flight at once: the overlap is seen however slowly the machine runs.
        var hold = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        _runner.Hold = hold.Task;
        _dispatcher.SetPolicies([TestPolicies.One(TestPolicies.Yaml("web", "['web-*']", maxParallel: 2))]);
        var fire = _dispatcher.FireAsync("web", DateTimeOffset.UtcNow, CancellationToken.None);
        await Wait.Until(() => _runner.Running >= 2, TimeSpan.FromSeconds(30), "runs of one policy to overlap");
        Assert.Equal(2, _runner.Calls.Count); // the other three wait for a policy slot
        hold.SetResult();
        var result = await fire.WaitAsync(TimeSpan.FromSeconds(30));
        Assert.Equal(["web-1", "web-2", "web-3", "web-4", "web-5"], result.Domains.Keys.Order());
        Assert.All(result.Domains.Values, o => Assert.Equal(DomainOutcome.Succeeded, o));
        Assert.Equal(5, _runner.Calls.Count);
        Assert.True(_runner.MaxConcurrent <= 2, $"policy max-parallel 2 exceeded: {_runner.MaxConcurrent}");
    }

    [Fact]
    public async Task The_global_limit_caps_all_policies_together()
    {
        var hold = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        _runner.Hold = hold.Task;
        _dispatcher.SetPolicies([
            TestPolicies.One(TestPolicies.Yaml("web", "['web-*']", maxParallel: 4)),
            TestPolicies.One(TestPolicies.Yaml("db", "[db-1]", maxParallel: 4, repository: "/srv/db")),
        ]);
        var fires = Task.WhenAll(_dispatcher.FireAsync("web", DateTimeOffset.UtcNow, default), _dispatcher.FireAsync("db", DateTimeOffset.UtcNow, default));
        await Wait.Until(() => _runner.Running >= 3, TimeSpan.FromSeconds(30), "three runs at once");
        Assert.Equal(3, _runner.Calls.Count); // the global limit holds the other three back
        hold.SetResult();
        await fires.WaitAsync(TimeSpan.FromSeconds(30));
        Assert.Equal(6, _runner.Calls.Count);
        Assert.Equal(3, _runner.MaxConcurrent);
    }

    [Fact]
    public async Task A_domain_already_running_is_skipped_not_run_twice()
    {
        // The first run is held until the second fire is done: "still running" does not depend on timing.
        var hold = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        _runner.Hold = hold.Task;
        _dispatcher.SetPolicies([TestPolicies.One(TestPolicies.Yaml("web", "[web-1]"))]);
        var first = _dispatcher.FireAsync("web", DateTimeOffset.UtcNow, default);
        await Wait.Until(() => _runner.Running == 1, TimeSpan.FromSeconds(30), "the first run");
        var second = await _dispatcher.FireAsync("web", DateTimeOffset.UtcNow, default).WaitAsync(TimeSpan.FromSeconds(30));
        Assert.Equal(DomainOutcome.Skipped, second.Domains["web-1"]);
        hold.SetResult();
        Assert.Equal(DomainOutcome.Succeeded, (await first.WaitAsync(TimeSpan.FromSeconds(30))).Domains["web-1"]);
        Assert.Single(_runner.Calls);
        Assert.Equal(1, _runner.MaxPerDomain);
        Assert.Equal(0, _gate.ClaimedDomains);
    }

    [Fact]
    public async Task A_failing_domain_does_not_stop_the_others()
    {
        _runner.FailFor = d => d == "web-2";
        _dispatcher.SetPolicies([TestPolicies.One(TestPolicies.Yaml("web", "['web-*']", maxParallel: 5))]);
        var result = await _dispatcher.FireAsync("web", DateTimeOffset.UtcNow, default);
        Assert.Equal(DomainOutcome.Failed, result.Domains["web-2"]);
        Assert.Equal(4, result.Domains.Values.Count(o => o == DomainOutcome.Succeeded));
    }

    [Fact]
    public async Task A_domain_refused_as_busy_is_skipped_not_failed()
    {
        _runner.RefuseFor = d => d == "web-3";
        _dispatcher.SetPolicies([TestPolicies.One(TestPolicies.Yaml("web", "['web-*']", maxParallel: 5))]);
        var result = await _dispatcher.FireAsync("web", DateTimeOffset.UtcNow, default);
        Assert.Equal(DomainOutcome.Skipped, result.Domains["web-3"]);
        Assert.Equal(4, result.Domains.Values.Count(o => o == DomainOutcome.Succeeded));
        Assert.Equal(0, _gate.ClaimedDomains);
    }

    [Fact]
    public async Task Cancellation_reaches_running_backups_and_they_finish()
    {
        _runner.Duration = TimeSpan.FromSeconds(30);
        _dispatcher.SetPolicies([TestPolicies.One(TestPolicies.Yaml("web", "[web-1, web-2]", maxParallel: 2))]);
        using var cts = new CancellationTokenSource();
        var fire = _dispatcher.FireAsync("web", DateTimeOffset.UtcNow, cts.Token);
        await Wait.Until(() => _runner.Running == 2, TimeSpan.FromSeconds(30), "both runs to start");
        await cts.CancelAsync();
        var result = await fire.WaitAsync(TimeSpan.FromSeconds(30));
        Assert.All(result.Domains.Values, o => Assert.Equal(DomainOutcome.Cancelled, o));
        Assert.Equal(2, _runner.CancelledRuns.Count);
        Assert.Equal(0, _gate.ClaimedDomains);
    }

    [Fact]
    public async Task A_policy_removed_by_a_reload_no_longer_fires()
    {
        _dispatcher.SetPolicies([TestPolicies.One(TestPolicies.Yaml("web", "[web-1]"))]);
        _dispatcher.SetPolicies([]);
        var result = await _dispatcher.FireAsync("web", DateTimeOffset.UtcNow, default);
        Assert.Equal("policy no longer loaded", result.Error);
        Assert.Empty(_runner.Calls);
    }

    [Fact]
    public async Task A_verify_fire_after_a_reload_dropped_the_verify_schedule_does_not_verify()
    {
        // Quartz may release a verify fire just before the reload deletes its job; it runs against the policy as loaded now.
        var verifier = new FakeVerifier();
        var dispatcher = new PolicyDispatcher(_runner, _domains, _gate, "qemu:///system", ScheduleState.InMemory(), NullLogger.Instance) { Verifier = verifier };
        dispatcher.SetPolicies([TestPolicies.One("name: v\ndomains: [web-1]\nschedule: daily\nrepository: /srv/r\nverify: {schedule: hourly}\n")]);
        Assert.True(await dispatcher.VerifyAsync("v", default));
        dispatcher.SetPolicies([TestPolicies.One("name: v\ndomains: [web-1]\nschedule: daily\nrepository: /srv/r\n")]);
        Assert.Null(await dispatcher.VerifyAsync("v", default));
        Assert.Equal(["v"], verifier.Calls);
    }

    [Fact]
    public async Task Fires_record_the_last_fire_time()
    {
        var state = ScheduleState.InMemory();
        var dispatcher = new PolicyDispatcher(_runner, _domains, _gate, "qemu:///system", state, NullLogger.Instance);
        dispatcher.SetPolicies([TestPolicies.One(TestPolicies.Yaml("web", "[web-1]"))]);
        var at = new DateTimeOffset(2026, 11, 26, 2, 0, 0, TimeSpan.Zero);
        await dispatcher.FireAsync("web", at, default);
        Assert.Equal(at, state.LastFire("web"));
    }
}
