using Backupd.Storage.Catalog;
using Backupd.Storage.Repository;

namespace Backupd.Daemon.Maintenance;

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
        if (!BackupRepository.Exists(repository)) return [];
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
