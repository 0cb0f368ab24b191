using Backupd.Policies.Model;
using Backupd.Policies.Retention;
using Backupd.Storage.Catalog;
using Backupd.Storage.Repository;

namespace Backupd.Daemon.Scheduling;

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
    public static async Task<IReadOnlyList<PruneDecision>> PruneAsync(PolicyDefinition policy, IRestorePointStore store, DateTimeOffset now, bool dryRun, CancellationToken ct, string? onlyDomain = null)
    {
        var decisions = new List<PruneDecision>();
        foreach (var (_, domain, points) in store.ListGroups(policy.Repository))
        {
            if (!policy.Domains.Matches(domain) || (onlyDomain is not null && domain != onlyDomain)) continue;
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
}

/// <summary>
/// Restore points of the versioned repository, with the catalog kept in step: a point is deleted
/// from the repository first (the truth), then its catalog rows, and a retention event is recorded.
/// Without a catalog (null) only the repository changes.
/// </summary>
public sealed class RepositoryPointStore(CatalogStore? catalog) : IRestorePointStore
{
    public IReadOnlyList<(string Group, string DomainName, IReadOnlyList<StoredPoint> Points)> ListGroups(string repository)
    {
        // Never create a repository just to find it empty.
        if (!File.Exists(Path.Combine(repository, "repository.json"))) return [];
        using var repo = BackupRepository.Open(repository);
        return repo.ListPoints()
            .GroupBy(p => p.GroupId, StringComparer.Ordinal)
            .Select(g =>
            {
                var name = g.OrderByDescending(p => p.CreatedAt).First().GroupName;
                return (g.Key, name, (IReadOnlyList<StoredPoint>)g.Select(p => new StoredPoint(g.Key, name, p.PointId, p.CreatedAt)).ToList());
            })
            .OrderBy(g => g.Key, StringComparer.Ordinal)
            .ToList();
    }

    public async Task DeleteAsync(string repository, StoredPoint point, string reason, CancellationToken ct)
    {
        using (var repo = BackupRepository.Open(repository)) repo.DeletePoint(point.Id);
        if (catalog is null) return;
        // A point the catalog never recorded (written with --no-catalog) has no rows and gets no event.
        if (!await catalog.DeletePointAsync(point.Id, ct)) return;
        await catalog.RecordEventAsync("retention", Guid.TryParse(point.Group, out var uuid) ? uuid : null, point.Id, true,
            $"removed: {reason}", ProcessIdentity.Current, ct);
    }
}
