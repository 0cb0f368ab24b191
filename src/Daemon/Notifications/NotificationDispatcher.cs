using System.Threading.Channels;
using Backupd.Daemon.Configuration;
using Backupd.Daemon.Observability;
using Backupd.Daemon.Runs;
using Backupd.Storage.Catalog;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

namespace Backupd.Daemon.Notifications;

/// <summary>
/// Turns run events into notifications: a failure, the first success after a failure, damage found by a verify,
/// a merge-back that needs the operator, and (checked every `stale-check`, default <see cref="DefaultStaleCheck"/>) a domain with no success in
/// 1.5x its policy's interval. Deliveries run on a queue in the background: a run never waits for a webhook.
/// </summary>
public sealed class NotificationDispatcher(DaemonConfig config, Notifier notifier, HealthSnapshot health, PolicyView policies,
    TimeProvider clock, ILogger<NotificationDispatcher> log) : BackgroundService, IRunObserver
{
    public static readonly TimeSpan DefaultStaleCheck = TimeSpan.FromMinutes(5);
    public const double StaleFactor = 1.5;

    private readonly Channel<(ObservedRun? Run, Notification? Message, RunEnd? End)> _queue =
        Channel.CreateBounded<(ObservedRun?, Notification?, RunEnd?)>(new BoundedChannelOptions(1000) { FullMode = BoundedChannelFullMode.DropOldest });
    private readonly HashSet<string> _staleSent = new(StringComparer.Ordinal);

    public void Started(ObservedRun run) { }
    public void Progress(ObservedRun run, RunProgress progress) { }

    public void Finished(ObservedRun run, RunEnd outcome)
    {
        if (outcome.Outcome != RunEnd.Refused) _queue.Writer.TryWrite((run, null, outcome));
    }

    public void Verified(string domain, string? policy, string pointId, bool ok, string detail)
    {
        if (!ok) Enqueue(new Notification(NotifyEvent.Damage, $"damage found in restore point {pointId} of {domain}", detail, domain, policy, clock.GetUtcNow()));
    }

    public void Enqueue(Notification message) => _queue.Writer.TryWrite((null, message, null));

    /// <summary>Targets that get a policy's events: every `scope: all` target plus those the policy's notify: names.</summary>
    public static IEnumerable<NotifyTarget> TargetsFor(IReadOnlyList<NotifyTarget> targets, Policies.Model.PolicyDefinition? policy, NotifyEvent e) =>
        targets.Where(t => t.Events.Contains(e) && (t.AllPolicies || policy?.Notify.Contains(t.Name) == true));

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        if (config.Notify.Count == 0) return;
        var stale = StaleLoopAsync(stoppingToken);
        try
        {
            await foreach (var (run, message, end) in _queue.Reader.ReadAllAsync(stoppingToken))
            {
                var m = message ?? await FromRunAsync(run!, end!, stoppingToken);
                if (m is not null) await DeliverAsync(m, stoppingToken);
            }
        }
        catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested) { }
        await stale.ConfigureAwait(ConfigureAwaitOptions.SuppressThrowing);
    }

    private async Task<Notification?> FromRunAsync(ObservedRun run, RunEnd end, CancellationToken ct)
    {
        var now = clock.GetUtcNow();
        if (end.MergeBackFailed)
            return new Notification(NotifyEvent.MergeBack, $"{run.Domain}: overlay not merged back, the operator is needed", end.Error ?? "", run.Domain, run.Policy, now);
        if (!end.Succeeded)
            return new Notification(NotifyEvent.Failure, $"backup of {run.Domain} {end.Outcome}", end.Error ?? "", run.Domain, run.Policy, now);
        // Success: tell only when the run before it (in the catalog: any process's run) did not succeed.
        try
        {
            var domains = await health.Catalog.FindDomainsAsync(run.Domain, ct);
            if (domains.Count != 1) return null;
            var runs = await health.Catalog.ListRunsAsync(domains[0].Uuid, 2, ct);
            if (runs.Count == 2 && runs[1].State is RunStates.Failed or RunStates.Interrupted)
                return new Notification(NotifyEvent.Recovered, $"backup of {run.Domain} succeeded again",
                    $"restore point {end.PointId}; the run before it {runs[1].State}: {runs[1].Error}", run.Domain, run.Policy, now);
        }
        catch (Npgsql.NpgsqlException e) { log.NotificationFailed("*", "recovered", run.Domain, e); }
        return null;
    }

    private async Task DeliverAsync(Notification m, CancellationToken ct)
    {
        foreach (var target in TargetsFor(config.Notify, policies.Find(m.Policy), m.Event))
        {
            try
            {
                await notifier.SendAsync(target, m, ct);
                log.NotificationSent(target.Name, m.EventName, m.Subject);
            }
            catch (Exception e) when (e is not OperationCanceledException || !ct.IsCancellationRequested)
            {
                log.NotificationFailed(target.Name, m.EventName, m.Subject, e);
            }
        }
    }

    private async Task StaleLoopAsync(CancellationToken ct)
    {
        using var timer = new PeriodicTimer(config.StaleCheck, clock);
        do
        {
            await health.RefreshAsync(ct);
            foreach (var m in Stale(health.Domains, policies, clock.GetUtcNow(), _staleSent)) Enqueue(m);
        } while (await timer.WaitForNextTickAsync(ct));
    }

    /// <summary>Domains with no success for 1.5x their policy's interval; each stale episode is told once (<paramref name="told"/>).</summary>
    internal static List<Notification> Stale(IReadOnlyList<DomainHealthRow> domains, PolicyView policies, DateTimeOffset now, HashSet<string> told)
    {
        var result = new List<Notification>();
        foreach (var d in domains)
        {
            if (policies.Find(d.Policy) is not { } policy || PolicyView.Interval(policy, now) is not { } interval) continue;
            var since = d.LastSuccess is { } t ? new DateTimeOffset(DateTime.SpecifyKind(t, DateTimeKind.Utc)) : (DateTimeOffset?)null;
            var key = $"{d.Name}@{since:O}";
            if (since is null || now - since.Value <= interval * StaleFactor) continue;
            if (!told.Add(key)) continue;
            result.Add(new Notification(NotifyEvent.Stale, $"{d.Name}: no successful backup for {(now - since.Value).TotalHours:0.#} h",
                $"policy {policy.Name} fires every {interval.TotalHours:0.#} h; the last success was at {since:u}; the newest run {d.LastState}: {d.LastError}", d.Name, policy.Name, now));
        }
        return result;
    }
}
