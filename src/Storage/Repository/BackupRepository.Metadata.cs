namespace Backupd.Storage.Repository;

/// <summary>
/// Loading the repository's documents: every one authenticated and its names checked (RepositoryDocuments), and
/// each checked against where it lies (a point's id is its file name, its group the directory it is in), so a
/// document copied to another place is refused as well.
/// </summary>
public sealed partial class BackupRepository
{
    /// <summary>The groups, by name; an entry of groups/ that is a link, a file or a name no group can have is refused.</summary>
    internal IEnumerable<string> GroupIds()
    {
        if (!Beneath.DirectoryExists(_layout.Groups))
        {
            return [];
        }
        var ids = new List<string>();
        foreach (var (name, kind) in Beneath.List(_layout.Groups))
        {
            if (name.StartsWith('.'))
            {
                continue; // hidden: never a group (NFS silly-rename files and the like)
            }
            var path = _layout.Group(name);
            if (kind != EntryKind.Directory)
            {
                throw new RepositoryCorruptException($"{path} is {(kind == EntryKind.Link ? "a symbolic link" : "not a directory")}; a group is a plain directory, so it is not followed");
            }
            Names.RequireEntry(NameKind.GroupId, name, _layout.Groups);
            ids.Add(name);
        }
        ids.Sort(StringComparer.Ordinal);
        return ids;
    }

    /// <summary>The points of a group, by sequence. <paramref name="problems"/>: report bad documents there and skip them, instead of throwing.</summary>
    internal List<PointDocument> LoadPoints(string groupId, List<string>? problems = null)
    {
        var dir = _layout.Points(groupId);
        if (!Beneath.DirectoryExists(dir))
        {
            return [];
        }
        var points = new List<PointDocument>();
        foreach (var (name, kind) in Beneath.List(dir))
        {
            if (name.StartsWith('.') || !name.EndsWith(".json", StringComparison.Ordinal))
            {
                continue; // temp files of a publication in progress
            }
            try
            {
                if (kind != EntryKind.File)
                {
                    throw new RepositoryCorruptException($"{dir}/{name} is {(kind == EntryKind.Link ? "a symbolic link" : "not a regular file")}; a point document is a plain file, so it is not followed");
                }
                var pointId = name[..^".json".Length];
                Names.RequireEntry(NameKind.PointId, pointId, dir);
                points.Add(ReadPoint(groupId, pointId));
            }
            catch (RepositoryCorruptException e) when (problems is not null)
            {
                problems.Add(e.Message);
            }
        }
        return points.OrderBy(p => p.Sequence).ToList();
    }

    /// <summary>points/POINT.json of a group, refused unless it names itself and its group.</summary>
    internal PointDocument ReadPoint(string groupId, string pointId)
    {
        var path = _layout.Point(groupId, pointId);
        var doc = Documents.Read<PointDocument>(path);
        if (doc.PointId != pointId || doc.GroupId != groupId)
        {
            throw new RepositoryCorruptException($"{path}: names point '{doc.PointId}' of group '{doc.GroupId}', but lies at point '{pointId}' of group '{groupId}'; refused");
        }
        return doc;
    }

    /// <summary>group.json, or null when the group has none yet.</summary>
    internal GroupDocument? ReadGroup(string groupId)
    {
        var path = _layout.GroupDocument(groupId);
        if (!Beneath.FileExists(path))
        {
            return null;
        }
        var doc = Documents.Read<GroupDocument>(path);
        return doc.GroupId == groupId ? doc : throw new RepositoryCorruptException($"{path}: names group '{doc.GroupId}' but lies in group '{groupId}'; refused");
    }

    internal JournalDocument ReadJournal(string groupId) => Documents.Read<JournalDocument>(_layout.Journal(groupId));

    /// <summary>
    /// Checks every document of a group (group.json, journal.json, each point) for verify: each problem is added to
    /// <paramref name="problems"/>. Returns the points that are sound.
    /// </summary>
    internal List<PointDocument> VerifyDocuments(string groupId, List<string> problems)
    {
        try
        {
            _ = ReadGroup(groupId);
        }
        catch (Exception e) when (e is RepositoryCorruptException or IOException)
        {
            problems.Add($"group {groupId}: {e.Message}");
        }
        try
        {
            if (Beneath.FileExists(_layout.Journal(groupId)))
            {
                _ = ReadJournal(groupId);
            }
        }
        catch (Exception e) when (e is RepositoryCorruptException or IOException)
        {
            problems.Add($"group {groupId}: {e.Message}");
        }
        var bad = new List<string>();
        var points = LoadPoints(groupId, bad);
        problems.AddRange(bad.Select(b => $"group {groupId}: {b}"));
        return points;
    }

    /// <summary>
    /// Turns a format-1 repository (documents without MACs) into format 2: each group, under its exclusive lock,
    /// has its interrupted update recovered and its documents rewritten with their MAC; repository.json last, so an
    /// upgrade interrupted anywhere is simply done again at the next open. Whatever the documents say at this moment
    /// is what gets authenticated (docs/repository-format.md, "Upgrading from format 1").
    /// </summary>
    private void Upgrade(RepositoryDocument doc)
    {
        Documents.AcceptUnsigned = true;
        foreach (var g in GroupIds())
        {
            GroupLock groupLock;
            try
            {
                groupLock = GroupLock.Exclusive(Beneath, _layout.Group(g), "upgrade to format 2", TimeSpan.Zero);
            }
            catch (RepositoryBusyException e)
            {
                throw new RepositoryBusyException($"{Directory} is a format-1 repository that is upgraded to format 2 at its first open by this version, which needs every group: {e.Message}", e);
            }
            using (groupLock)
            {
                Recover(g);
                if (ReadGroup(g) is { } group)
                {
                    Documents.Write(_layout.GroupDocument(g), group);
                }
                foreach (var point in LoadPoints(g))
                {
                    Documents.Write(_layout.Point(g, point.PointId), point);
                }
            }
        }
        Documents.Write(_layout.Document, doc with { Version = RepositoryDocument.CurrentVersion });
        Documents.AcceptUnsigned = false;
    }
}
