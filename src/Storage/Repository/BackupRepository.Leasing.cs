namespace Backupd.Storage.Repository;

/// <summary>
/// A restore point held open for reading while something outside the repository uses its files in place (a restore
/// drill's or an instant restore's overlays backed by the mirror): the group's lock is held shared, so no backup,
/// prune or forget of the group changes a mirror until <see cref="Dispose"/>.
/// </summary>
public sealed class PointLease : IDisposable
{
    private readonly GroupLock _lock;

    internal PointLease(GroupLock groupLock, string groupId, IReadOnlyDictionary<string, string?> mirrors)
    {
        _lock = groupLock;
        GroupId = groupId;
        Mirrors = mirrors;
    }

    public string GroupId { get; }

    /// <summary>Per file key: the mirror's path when the mirror holds exactly this point's version (no undo record to apply), else null.</summary>
    public IReadOnlyDictionary<string, string?> Mirrors { get; }

    public void Dispose() => _lock.Dispose();
}

public sealed partial class BackupRepository
{
    /// <summary>Takes the point's group lock shared (refused while a writer holds it) and tells which of its files the mirror holds as they are.</summary>
    public PointLease LeasePoint(string pointId, string purpose)
    {
        var point = FindPointDocument(pointId) ?? throw new RestorePointNotFoundException($"restore point {pointId} does not exist in {Directory}");
        var groupLock = GroupLock.Shared(Beneath, _layout.Group(point.GroupId), purpose);
        try
        {
            var points = LoadPoints(point.GroupId);
            var mirrors = new Dictionary<string, string?>(StringComparer.Ordinal);
            foreach (var file in point.Files)
            {
                var chain = VersionChain(points, file.FileKey);
                var newest = chain.Count > 0 && chain[^1].VersionId == file.VersionId;
                mirrors[file.FileKey] = newest ? Path.GetFullPath(_layout.Mirror(point.GroupId, file.FileKey)) : null;
            }
            return new PointLease(groupLock, point.GroupId, mirrors);
        }
        catch
        {
            groupLock.Dispose();
            throw;
        }
    }
}
