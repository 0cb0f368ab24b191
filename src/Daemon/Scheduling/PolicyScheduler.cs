using Backupd.Policies.Loading;
using Backupd.Policies.Model;
using Microsoft.Extensions.Logging;
using Quartz;

namespace Backupd.Daemon.Scheduling;

/// <summary>
/// The daemon's schedule: one Quartz job per policy with one cron trigger per schedule entry (in
/// the policy's time zone), kept in step with the policy files by <see cref="ApplyAsync"/>.
/// Start-up catch-up of missed fires, and a graceful stop: no new fires, running backups are
/// told to stop (they still commit and pivot), and the stop waits for them.
/// </summary>
public sealed class PolicyScheduler(PolicyDispatcher dispatcher, ScheduleState state, TimeSpan misfireGrace, ILogger logger) : IAsyncDisposable
{
    public const string JobGroup = "policies";
    public const string VerifyGroup = "verify";
    public const string DrillGroup = "drill";

    private readonly PolicyReloader _reloader = new();
    private readonly Dictionary<string, string> _scheduled = new(StringComparer.Ordinal);
    private readonly CancellationTokenSource _stopping = new();
    private readonly List<Task> _catchUps = [];
    private readonly SemaphoreSlim _applyLock = new(1, 1);
    private IScheduler? _quartz;
    private bool _stopped;

    public IReadOnlyCollection<PolicyDefinition> Active => _reloader.Active;

    public async Task StartAsync(CancellationToken ct)
    {
        var factory = QuartzSchedulerBuilder.Create(q =>
        {
            q.ConfigureScheduler(o => o.InstanceName = "backupd");
            q.UseInMemoryStore(o => o.MisfireThreshold = TimeSpan.FromSeconds(30));
            // Jobs wait on the RunGate rather than on Quartz threads; enough threads that a busy policy never delays another's fire.
            q.UseDefaultThreadPool(64);
            q.UseJobFactory(new PolicyJobFactory(dispatcher, _stopping.Token));
        }).Build();
        _quartz = await factory.GetScheduler(ct);
        await _quartz.Start(ct);
    }

    /// <summary>Applies freshly loaded files: broken files keep their previous policies; jobs follow the result.</summary>
    public async Task<ReloadOutcome> ApplyAsync(IReadOnlyList<PolicyFileResult> files, CancellationToken ct)
    {
        var quartz = _quartz ?? throw new InvalidOperationException("StartAsync first");
        await _applyLock.WaitAsync(ct);
        try
        {
            var outcome = _reloader.Apply(files);
            dispatcher.SetPolicies(outcome.Active);
            foreach (var name in outcome.Removed)
            {
                await quartz.DeleteJob(new JobKey(name, JobGroup), ct);
                await quartz.DeleteJob(new JobKey(name, VerifyGroup), ct);
                await quartz.DeleteJob(new JobKey(name, DrillGroup), ct);
                _scheduled.Remove(name);
            }
            foreach (var policy in outcome.Active)
            {
                var fingerprint = PolicyReloader.ScheduleFingerprint(policy.Schedule)
                    + "|" + (policy.Verify.Schedule is { } v ? PolicyReloader.ScheduleFingerprint(v) : "")
                    + "|" + (policy.Drill?.Schedule is { } d ? PolicyReloader.ScheduleFingerprint(d) : "");
                if (_scheduled.TryGetValue(policy.Name, out var current) && current == fingerprint) continue;
                try
                {
                    var (job, triggers) = PolicyTriggers.Build(policy, misfireGrace);
                    await quartz.ScheduleJob(job, triggers, new ScheduleJobOptions { Replace = true }, ct);
                    await quartz.DeleteJob(new JobKey(policy.Name, VerifyGroup), ct);
                    if (PolicyTriggers.BuildVerify(policy) is var (verifyJob, verifyTriggers))
                        await quartz.ScheduleJob(verifyJob, verifyTriggers, new ScheduleJobOptions { Replace = true }, ct);
                    await quartz.DeleteJob(new JobKey(policy.Name, DrillGroup), ct);
                    if (PolicyTriggers.BuildDrill(policy) is var (drillJob, drillTriggers))
                        await quartz.ScheduleJob(drillJob, drillTriggers, new ScheduleJobOptions { Replace = true }, ct);
                    _scheduled[policy.Name] = fingerprint;
                }
                catch (Exception e) when (e is not OperationCanceledException)
                {
                    // One policy Quartz refuses must not take the others (or the daemon) down.
                    logger.PolicyNotScheduled(e, policy.Name, e.Message);
                }
            }
            foreach (var error in outcome.Errors) logger.PolicyInvalid(error.ToString());
            foreach (var path in outcome.KeptPreviousVersion) logger.PolicyFileKeptPrevious(path);
            logger.PoliciesApplied(
                outcome.Active.Count, outcome.Added.Count, outcome.Changed.Count, outcome.Removed.Count);
            return outcome;
        }
        finally
        {
            _applyLock.Release();
        }
    }

    /// <summary>The next fire time Quartz has for a policy (null when it is not scheduled).</summary>
    public async Task<DateTimeOffset?> NextFireAsync(string policy, CancellationToken ct)
    {
        if (_quartz is null) return null;
        DateTimeOffset? next = null;
        for (var i = 0; ; i++)
        {
            var trigger = await _quartz.GetTrigger(new TriggerKey($"{policy}#{i}", JobGroup), ct);
            if (trigger is null) break;
            var t = trigger.NextFireTimeUtc;
            if (t is not null && (next is null || t < next)) next = t;
        }
        return next;
    }

    /// <summary>Starts, once each, the fires missed while the daemon was down (within the grace window).</summary>
    public IReadOnlyList<(string Policy, DateTimeOffset Missed)> CatchUp(DateTimeOffset now)
    {
        var due = new List<(string, DateTimeOffset)>();
        foreach (var policy in _reloader.Active)
        {
            if (MisfirePlanner.MissedFire(policy.Schedule, state.LastFire(policy.Name), now, misfireGrace) is not { } missed) continue;
            logger.MissedFireCatchUp(policy.Name, missed);
            due.Add((policy.Name, missed));
            lock (_catchUps) _catchUps.Add(dispatcher.FireAsync(policy.Name, missed, _stopping.Token));
        }
        return due;
    }

    /// <summary>Graceful stop: no new fires; running backups are cancelled (they still commit and pivot) and awaited.</summary>
    public async Task StopAsync()
    {
        if (_stopped) return;
        _stopped = true;
        if (_quartz is not null) await _quartz.Standby(CancellationToken.None);
        await _stopping.CancelAsync();
        if (_quartz is not null) await _quartz.Shutdown(true, CancellationToken.None);
        Task[] pending;
        lock (_catchUps) pending = [.. _catchUps];
        await Task.WhenAll(pending);
    }

    public async ValueTask DisposeAsync()
    {
        await StopAsync();
        _stopping.Dispose();
        _applyLock.Dispose();
    }
}

/// <summary>Builds the Quartz job and triggers of one policy.</summary>
public static class PolicyTriggers
{
    public static (IJobDetail Job, IReadOnlyCollection<ITrigger> Triggers) Build(PolicyDefinition policy, TimeSpan misfireGrace)
    {
        var job = JobBuilder.Create<PolicyJob>()
            .WithIdentity(policy.Name, PolicyScheduler.JobGroup)
            .WithDescription($"backup policy {policy.Name} ({policy.Source})")
            .StoreDurably(false)
            .Build();
        var triggers = policy.Schedule.Entries.Select((entry, i) => TriggerBuilder.Create<PolicyJob>()
                .WithIdentity($"{policy.Name}#{i}", PolicyScheduler.JobGroup)
                .WithDescription(entry.Written)
                .ForJob(job)
                // Domains already running are skipped by the RunGate, so overlapping fires are harmless.
                .WithOverlapPolicy(OverlapPolicy.AllowAll)
                // Late by at most the grace window: still fires; later than that: wait for the next time.
                .WithMisfireThreshold(misfireGrace > TimeSpan.Zero ? misfireGrace : TimeSpan.FromSeconds(1))
                .WithSchedule(CronScheduleBuilder.Create(entry.CronText).InTimeZone(policy.Schedule.TimeZone)
                    .WithMisfireInstruction(CronTriggerMisfireInstruction.DoNothing))
                .Build())
            .ToList();
        return (job, triggers);
    }

    /// <summary>The verify job of a policy with a `verify.schedule`; null without one.</summary>
    public static (IJobDetail Job, IReadOnlyCollection<ITrigger> Triggers)? BuildVerify(PolicyDefinition policy) =>
        policy.Verify.Schedule is { } schedule ? BuildSide(policy, schedule, PolicyScheduler.VerifyGroup, $"verify restore points of policy {policy.Name}") : null;

    /// <summary>The drill job of a policy with a `drill:` (issue 11); null without one.</summary>
    public static (IJobDetail Job, IReadOnlyCollection<ITrigger> Triggers)? BuildDrill(PolicyDefinition policy) =>
        policy.Drill?.Schedule is { } schedule ? BuildSide(policy, schedule, PolicyScheduler.DrillGroup, $"restore drills of policy {policy.Name}") : null;

    /// <summary>A job beside the backups (verify, drill): skipped when the previous one still runs, a misfire is not made up.</summary>
    private static (IJobDetail Job, IReadOnlyCollection<ITrigger> Triggers) BuildSide(PolicyDefinition policy, Policies.Model.ScheduleDefinition schedule, string group, string description)
    {
        var job = JobBuilder.Create<PolicyJob>()
            .WithIdentity(policy.Name, group)
            .WithDescription(description)
            .Build();
        var triggers = schedule.Entries.Select((entry, i) => TriggerBuilder.Create<PolicyJob>()
                .WithIdentity($"{policy.Name}#{group}{i}", group)
                .WithDescription(entry.Written)
                .ForJob(job)
                .WithOverlapPolicy(OverlapPolicy.Skip)
                .WithSchedule(CronScheduleBuilder.Create(entry.CronText).InTimeZone(schedule.TimeZone)
                    .WithMisfireInstruction(CronTriggerMisfireInstruction.DoNothing))
                .Build())
            .ToList();
        return (job, triggers);
    }
}
