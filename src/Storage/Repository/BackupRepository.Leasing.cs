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

/// <summary>groups/ID/pins/PIN.json: a point in use outside the repository by an operation that outlives its process (an instant restore's pull).</summary>
internal sealed record PinDocument(string PinId, string PointId, string Holder, DateTimeOffset Since) : IRepositoryDocument<PinDocument>
{
    public string? Mac { get; init; }

    public PinDocument WithMac(string? mac) => this with { Mac = mac };

    public void CheckNames(string path)
    {
        Names.Require(NameKind.MetadataName, PinId, path, "pinId");
        Names.Require(NameKind.PointId, PointId, path, "pointId");
    }
}

public sealed partial class BackupRepository
{
    /// <summary>
    /// Takes the point's group lock shared (refused while a writer holds it) and tells which of its files the mirror holds as they are.
    /// With <paramref name="pinId"/>, also pins the point (<see cref="Unpin"/>): the lock dies with the process, the pin does not, so
    /// backups and deletions of the group stay refused after a kill -9 until whoever finishes the work (`recover`) unpins it.
    /// </summary>
    public PointLease LeasePoint(string pointId, string purpose, string? pinId = null)
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
            if (pinId is not null)
            {
                Names.Validate(NameKind.MetadataName, pinId, nameof(pinId));
                Beneath.CreateDirectory(_layout.Pins(point.GroupId));
                Documents.Write(_layout.Pin(point.GroupId, pinId), new PinDocument(pinId, pointId, purpose, DateTimeOffset.UtcNow));
            }
            return new PointLease(groupLock, point.GroupId, mirrors);
        }
        catch
        {
            groupLock.Dispose();
            throw;
        }
    }

    /// <summary>Removes the pin <see cref="LeasePoint"/> wrote (durably; nothing if it is gone already).</summary>
    public void Unpin(string pointId, string pinId)
    {
        Names.Validate(NameKind.MetadataName, pinId, nameof(pinId));
        // A point that is gone cannot be pinned (a pinned one cannot be deleted).
        if (FindPointDocument(pointId) is { } point) Beneath.Delete(_layout.Pin(point.GroupId, pinId));
    }

    /// <summary>The pins of a group (what `status` or an operator wants to know before retrying a refused backup).</summary>
    public IReadOnlyList<(string PinId, string PointId, string Holder, DateTimeOffset Since)> Pins(string groupId)
    {
        Names.Validate(NameKind.GroupId, groupId, nameof(groupId));
        var dir = _layout.Pins(groupId);
        if (!Beneath.DirectoryExists(dir)) return [];
        var pins = new List<(string, string, string, DateTimeOffset)>();
        foreach (var (name, kind) in Beneath.List(dir))
        {
            if (kind != EntryKind.File || !name.EndsWith(".json", StringComparison.Ordinal)) continue;
            var doc = Documents.Read<PinDocument>(Path.Combine(dir, name));
            pins.Add((doc.PinId, doc.PointId, doc.Holder, doc.Since));
        }
        return pins;
    }

    /// <summary>A writer of the group (backup, deletion) is refused while any point of it is pinned: the pin's holder reads the mirror in place.</summary>
    private void RefuseIfPinned(string groupId, string purpose)
    {
        if (Pins(groupId) is not [var pin, ..]) return;
        throw new RepositoryBusyException(
            $"restore point {pin.PointId} is in use by {pin.Holder} (pin {pin.PinId}, since {pin.Since.UtcDateTime:yyyy-MM-dd HH:mm:ss}Z): {purpose} of {_layout.Group(groupId)} refused, nothing was done. " +
            "An instant restore releases it when its block pull ends; if its process died, `backupd recover` resumes the pull and releases it");
    }
}
