using Backupd.Daemon.Observability;
using Backupd.Storage.Catalog;

namespace Backupd.Daemon.Web;

/// <summary>The overview's data (also GET /api/status): the CLI's `status --json` fields plus every domain's health and the live jobs.</summary>
public sealed record StatusView(
    DateTimeOffset At, bool CatalogUp, IReadOnlyList<DomainView> Domains, IReadOnlyList<JobView> Jobs,
    IReadOnlyList<RunRow> Running, IReadOnlyList<RunRow> LastPerDomain);

/// <summary>One domain row: last success age against its policy's interval gives the colour (fresh, late, stale).</summary>
public sealed record DomainView(string Name, Guid Uuid, string? Policy, DateTime? LastSuccess, double? AgeSeconds, double? IntervalSeconds,
    string Staleness, DateTimeOffset? NextFire, string? LastState, string? LastError, int Points, long RepositoryBytes,
    string? NewestConsistency, int DamagedPoints);

public sealed record JobView(string Domain, string? Policy, string Step, long Bytes, long? Total, double? Percent, DateTimeOffset StartedAt);

/// <summary>GET /api/domains/NAME: restore points (as `list --json`), runs (as `status`), events.</summary>
public sealed record DomainDetailView(DomainView Domain, IReadOnlyList<RestorePointSummary> Points, IReadOnlyList<RunRow> Runs, IReadOnlyList<EventRow> Events);

/// <summary>Reads what the pages and the JSON API show, from the catalog (via <see cref="HealthSnapshot"/>) and the live tracker.</summary>
public sealed class StatusReader(HealthSnapshot health, RunTracker tracker, PolicyView policies, TimeProvider clock)
{
    public async Task<StatusView> StatusAsync(CancellationToken ct)
    {
        await health.RefreshAsync(ct);
        var now = clock.GetUtcNow();
        CatalogStatus? status = null;
        if (health.CatalogUp)
        {
            try { status = await health.Catalog.GetStatusAsync(ct); }
            catch (Npgsql.NpgsqlException) { /* shown as catalog down by the health flag on the next refresh */ }
        }
        var jobs = tracker.Running.Select(j => new JobView(j.Run.Domain, j.Run.Policy, j.Step, j.Bytes, j.Total, j.Percent, j.Run.StartedAt)).ToList();
        return new StatusView(now, health.CatalogUp, health.Domains.Select(d => View(d, now)).ToList(), jobs, status?.Running ?? [], status?.LastPerDomain ?? []);
    }

    public async Task<DomainDetailView?> DomainAsync(string name, CancellationToken ct)
    {
        await health.RefreshAsync(ct);
        if (health.Domains.FirstOrDefault(d => d.Name == name || d.Uuid.ToString() == name) is not { } row) return null;
        var points = await health.Catalog.ListPointsAsync(row.Uuid, null, ct);
        var runs = await health.Catalog.ListRunsAsync(row.Uuid, 50, ct);
        var events = await health.Catalog.ListDomainEventsAsync(row.Uuid, 50, ct);
        return new DomainDetailView(View(row, clock.GetUtcNow()), points, runs, events);
    }

    private DomainView View(DomainHealthRow d, DateTimeOffset now)
    {
        var policy = policies.Find(d.Policy);
        var interval = policy is null ? null : PolicyView.Interval(policy, now);
        double? age = d.LastSuccess is { } t ? (now - new DateTimeOffset(DateTime.SpecifyKind(t, DateTimeKind.Utc))).TotalSeconds : null;
        var staleness = age is null ? "never"
            : interval is null ? "unscheduled"
            : age <= interval.Value.TotalSeconds ? "fresh"
            : age <= interval.Value.TotalSeconds * Notifications.NotificationDispatcher.StaleFactor ? "late" : "stale";
        return new DomainView(d.Name, d.Uuid, d.Policy, d.LastSuccess, age, interval?.TotalSeconds, staleness,
            policy is null ? null : PolicyView.NextFire(policy, now), d.LastState, d.LastError, d.Points, d.RepositoryBytes, d.NewestConsistency, d.DamagedPoints);
    }
}
