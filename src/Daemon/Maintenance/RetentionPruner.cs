using Backupd.Policies.Model;
using Backupd.Policies.Retention;

namespace Backupd.Daemon.Maintenance;

/// <summary>A restore point as prune sees it: its group (one per domain, named by the domain's UUID), the domain name, id and time.</summary>
public sealed record StoredPoint(string Group, string DomainName, string Id, DateTimeOffset Time);

/// <summary>The restore points of a repository and how to delete one.</summary>
public interface IRestorePointStore
{
    /// <summary>Every group (domain) of the repository with its points; empty when the repository does not exist.</summary>
    IReadOnlyList<(string Group, string DomainName, IReadOnlyList<StoredPoint> Points)> ListGroups(string repository);

    Task DeleteAsync(string repository, StoredPoint point, string reason, CancellationToken ct);
}

/// <summary>One decision of a prune, for output.</summary>
public sealed record PruneDecision(string Policy, string Domain, string Point, DateTimeOffset Time, bool Keep, string Reason);

/// <summary>
/// Applies a policy's retention to the groups of its repository whose domain the policy selects:
/// <see cref="RetentionPlanner"/> decides, then each removal is deleted (unless dry-run). Runs
/// after every scheduled backup (for that domain) and from `backupd prune`.
/// </summary>
public static class RetentionPruner
{
    /// <param name="peers">
    /// The other loaded policies. A domain that one of them also selects into the same repository is not pruned: the
    /// points of a domain form one group whatever policy made them, so each policy's rules would remove the other's
    /// points (the loader catches equal names and globs; two different globs can still meet on a real domain).
    /// </param>
    public static async Task<IReadOnlyList<PruneDecision>> PruneAsync(PolicyDefinition policy, IRestorePointStore store, DateTimeOffset now, bool dryRun, CancellationToken ct,
        string? onlyDomain = null, IEnumerable<PolicyDefinition>? peers = null)
    {
        var decisions = new List<PruneDecision>();
        var sharing = (peers ?? []).Where(o => o.Name != policy.Name && SameRepository(o.Repository, policy.Repository)).ToList();
        foreach (var (_, domain, points) in store.ListGroups(policy.Repository))
        {
            if (!policy.Domains.Matches(domain) || (onlyDomain is not null && domain != onlyDomain)) continue;
            var others = sharing.Where(o => o.Domains.Matches(domain)).Select(o => o.Name).ToList();
            if (others.Count > 0)
            {
                var reason = $"not pruned: {domain} is also selected by policy {string.Join(", ", others)} into this repository, and each policy's " +
                    "retention would remove the other's points; exclude it from all but one policy";
                decisions.AddRange(points.OrderByDescending(p => p.Time).Select(p => new PruneDecision(policy.Name, domain, p.Id, p.Time, true, reason)));
                continue;
            }
            var byId = points.ToDictionary(p => p.Id, StringComparer.Ordinal);
            var plan = RetentionPlanner.Plan(points.Select(p => new RetentionPoint(p.Id, p.Time)), policy.Retention, now, policy.Schedule.TimeZone);
            // Oldest first: the repository deletes an old point by dropping its undo record, the cheapest way.
            foreach (var d in plan.Reverse())
            {
                if (!d.Keep && !dryRun) await store.DeleteAsync(policy.Repository, byId[d.Point.Id], d.Reason, ct);
                decisions.Add(new PruneDecision(policy.Name, domain, d.Point.Id, d.Point.Time, d.Keep, d.Reason));
            }
        }
        return decisions;
    }

    private static bool SameRepository(string a, string b) =>
        string.Equals(Path.TrimEndingDirectorySeparator(Path.GetFullPath(a)), Path.TrimEndingDirectorySeparator(Path.GetFullPath(b)), StringComparison.Ordinal);
}
