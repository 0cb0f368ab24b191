using Backupd.Policies.Retention;
using Backupd.Storage.Offsite;

namespace Backupd.Daemon.Copies;

/// <summary>One decision of a prune of a copy, for output.</summary>
public sealed record CopyPruneDecision(string Domain, string Point, DateTimeOffset Time, bool Keep, string Reason);

/// <summary>Which rules a prune of a copy applies, to which domains (null: all), in which time zone, and who they come from.</summary>
public sealed record CopyRetention(RetentionRules Rules, Func<string, bool>? Selects, TimeZoneInfo Zone, string Source);

/// <summary>
/// Retention on a copy repository: per domain (the group of the copied points) <see cref="RetentionPlanner"/> decides,
/// the same planner and semantics as the local prune, then <see cref="CopyRepository.Prune"/> removes the indexes and
/// collects the chunks nothing names any more. Needs the key (the points' times are inside the sealed indexes) and a
/// store that may delete.
/// </summary>
public static class CopyPruner
{
    public static (IReadOnlyList<CopyPruneDecision> Decisions, CopyPruneReport Report) Prune(CopyRepository copy, CopyRetention retention, DateTimeOffset now, bool dryRun, CancellationToken ct)
    {
        var decisions = new List<CopyPruneDecision>();
        foreach (var group in copy.List().GroupBy(h => h.GroupId, StringComparer.Ordinal))
        {
            var domain = group.OrderByDescending(h => h.CreatedAt).First().GroupName;
            if (retention.Selects is { } selects && !selects(domain))
            {
                decisions.AddRange(group.OrderByDescending(h => h.CreatedAt).Select(h =>
                    new CopyPruneDecision(h.GroupName, h.PointId, h.CreatedAt, true, $"kept: {retention.Source} does not select {domain}")));
                continue;
            }
            var plan = RetentionPlanner.Plan(group.Select(h => new RetentionPoint(h.PointId, h.CreatedAt)), retention.Rules, now, retention.Zone);
            decisions.AddRange(plan.Reverse().Select(d => new CopyPruneDecision(domain, d.Point.Id, d.Point.Time, d.Keep, d.Reason)));
        }
        var report = copy.Prune(decisions.Where(d => !d.Keep).Select(d => d.Point).ToList(), dryRun, ct);
        return (decisions, report);
    }
}
