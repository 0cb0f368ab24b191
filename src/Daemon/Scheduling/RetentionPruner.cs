using System.Globalization;
using System.Xml.Linq;
using Backupd.Policies.Model;
using Backupd.Policies.Retention;

namespace Backupd.Daemon.Scheduling;

/// <summary>A restore point in a repository, as prune sees it: the group (one per domain), its id and time.</summary>
public sealed record StoredPoint(string Group, string DomainName, string Id, DateTimeOffset Time);

/// <summary>The restore points of a repository and how to delete one. The repository keeps its own locks.</summary>
public interface IRestorePointStore
{
    /// <summary>Every group (domain) of the repository with its points, oldest first.</summary>
    IReadOnlyList<(string Group, string DomainName, IReadOnlyList<StoredPoint> Points)> ListGroups(string repository);

    void DeletePoint(string repository, StoredPoint point);
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
    public static IReadOnlyList<PruneDecision> Prune(PolicyDefinition policy, IRestorePointStore store, DateTimeOffset now, bool dryRun, string? onlyDomain = null)
    {
        var decisions = new List<PruneDecision>();
        if (!Directory.Exists(policy.Repository)) return decisions;
        foreach (var (_, domain, points) in store.ListGroups(policy.Repository))
        {
            if (!policy.Domains.Matches(domain) || (onlyDomain is not null && domain != onlyDomain)) continue;
            var byId = points.ToDictionary(p => p.Id, StringComparer.Ordinal);
            var plan = RetentionPlanner.Plan(points.Select(p => new RetentionPoint(p.Id, p.Time)), policy.Retention, now, policy.Schedule.TimeZone);
            foreach (var d in plan)
            {
                if (!d.Keep && !dryRun) store.DeletePoint(policy.Repository, byId[d.Point.Id]);
                decisions.Add(new PruneDecision(policy.Name, domain, d.Point.Id, d.Point.Time, d.Keep, d.Reason));
            }
        }
        return decisions;
    }
}

/// <summary>
/// The restore points of the interim directory repository (DIR/&lt;domain uuid&gt;/&lt;point id&gt;/ with
/// domain.xml and manifest.json; point ids are UTC timestamps). Deleting takes the group's lock,
/// so it never races a backup writing to the same group.
/// </summary>
public sealed class DirectoryPointStore : IRestorePointStore
{
    private const string PointIdFormat = "yyyyMMdd'T'HHmmssfff'Z'";

    public IReadOnlyList<(string Group, string DomainName, IReadOnlyList<StoredPoint> Points)> ListGroups(string repository)
    {
        var groups = new List<(string, string, IReadOnlyList<StoredPoint>)>();
        foreach (var groupDir in Directory.EnumerateDirectories(repository).Order(StringComparer.Ordinal))
        {
            var group = Path.GetFileName(groupDir);
            if (group.StartsWith('.')) continue;
            var points = new List<StoredPoint>();
            string? name = null;
            foreach (var pointDir in Directory.EnumerateDirectories(groupDir).Order(StringComparer.Ordinal))
            {
                var id = Path.GetFileName(pointDir);
                if (id.StartsWith('.') || !File.Exists(Path.Combine(pointDir, "manifest.json"))) continue;
                if (!DateTimeOffset.TryParseExact(id, PointIdFormat, CultureInfo.InvariantCulture, DateTimeStyles.AssumeUniversal, out var time)) continue;
                name = DomainName(pointDir) ?? name;
                points.Add(new StoredPoint(group, "", id, time));
            }
            if (points.Count == 0 || name is null) continue;
            groups.Add((group, name, points.Select(p => p with { DomainName = name }).ToList()));
        }
        return groups;
    }

    public void DeletePoint(string repository, StoredPoint point)
    {
        var group = Path.Combine(repository, point.Group);
        // The same lock a backup session holds on its group: prune waits for no one and never deletes under a writer.
        using var groupLock = new FileStream(Path.Combine(group, ".lock"), FileMode.OpenOrCreate, FileAccess.ReadWrite, FileShare.None);
        var dir = Path.Combine(group, point.Id);
        // Rename first: a point is either whole or absent, also if the delete is interrupted.
        var doomed = Path.Combine(group, $".deleting-{point.Id}");
        Directory.Move(dir, doomed);
        Directory.Delete(doomed, recursive: true);
    }

    private static string? DomainName(string pointDir)
    {
        var xml = Path.Combine(pointDir, "domain.xml");
        try
        {
            return File.Exists(xml) ? XDocument.Load(xml).Root?.Element("name")?.Value : null;
        }
        catch (System.Xml.XmlException)
        {
            return null;
        }
    }
}
