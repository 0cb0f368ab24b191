using System.Security.Cryptography;
using Backupd.Storage.Delta;

namespace Backupd.Storage.Repository;

/// <summary>
/// A versioned backup repository (docs/repository-format.md): per group (a VM, by UUID) and per file, the
/// newest version as a plain file (the mirror) with its signature, and each older version as an undo record
/// against the next newer one. Restore points group the versions of several files.
/// Thread-safety: one instance may be shared; writers of one group are serialized by the group lock.
/// </summary>
public sealed partial class BackupRepository : IDisposable
{
    public const int DefaultBlockSize = 64 * 1024;
    private readonly RepositoryLayout _layout;

    private BackupRepository(string directory, RepositoryDirectory beneath, byte[] key)
    {
        Directory = directory;
        _layout = new RepositoryLayout(directory);
        Beneath = beneath;
        Documents = new RepositoryDocuments(beneath, key);
        Hasher = new BlockHasher(key);
    }

    public string Directory { get; }

    /// <summary>Block size for files backed up for the first time (a file keeps the block size of its first backup).</summary>
    public int BlockSize { get; set; } = DefaultBlockSize;

    /// <summary>How long a backup or deletion waits for restores and verifies of its group to end before it is refused.</summary>
    public TimeSpan ReaderWait { get; set; } = DefaultReaderWait;

    public static readonly TimeSpan DefaultReaderWait = TimeSpan.FromMinutes(5);

    /// <summary>Each backup re-reads and checks 1/ScrubCycle of a mirror's unchanged blocks, all of them every ScrubCycle runs; 0 checks only the blocks verify listed.</summary>
    public int ScrubCycle
    {
        get => _scrubCycle;
        set => _scrubCycle = value >= 0 ? value : throw new ArgumentOutOfRangeException(nameof(value), value, "the scrub cycle is a number of runs, 0 or more");
    }

    public const int DefaultScrubCycle = 64;
    private int _scrubCycle = DefaultScrubCycle;

    internal BlockHasher Hasher { get; }
    internal RepositoryLayout Layout => _layout;

    /// <summary>Every access to the repository's files goes through here (no links followed, nothing outside).</summary>
    internal RepositoryDirectory Beneath { get; }

    /// <summary>The authenticated JSON documents.</summary>
    internal RepositoryDocuments Documents { get; }

    /// <summary>Test hook: called at every write phase with the phase name; throwing from it simulates a crash there.</summary>
    internal Action<string>? FaultHook { get; set; }

    /// <summary>Bytes of new data buffered between undo-record syncs (tests lower it to get several batches).</summary>
    internal int BatchBytes { get; set; } = 16 << 20;

    /// <summary>Groups whose interrupted update could not be recovered at open because a live writer holds them.</summary>
    public IReadOnlyList<string> BusyGroupsAtOpen { get; private set; } = [];

    /// <summary>Whether <paramref name="directory"/> holds a repository (<see cref="Open"/> would create one where none is).</summary>
    public static bool Exists(string directory) => File.Exists(new RepositoryLayout(directory).Document);

    /// <summary>Opens (or creates) a repository and rolls back (or completes) every interrupted update.</summary>
    public static BackupRepository Open(string directory)
    {
        directory = Path.GetFullPath(directory);
        var layout = new RepositoryLayout(directory);
        if (!File.Exists(layout.Document))
        {
            if (System.IO.Directory.Exists(directory) && System.IO.Directory.EnumerateFileSystemEntries(directory).Any(e => Path.GetFileName(e) is not ("key" or "groups")))
            {
                throw new RepositoryException($"{directory} is not empty and has no repository.json: not a backupd repository (refusing to create one over other files)");
            }
            System.IO.Directory.CreateDirectory(directory); // the root is the operator's path; everything below goes through Beneath
            using var fresh = new RepositoryDirectory(directory);
            Create(layout, fresh);
        }
        var beneath = new RepositoryDirectory(directory);
        try
        {
            var doc = Json.Parse<RepositoryDocument>(layout.Document, beneath.ReadAll(layout.Document, RepositoryDocuments.MaxDocumentBytes));
            if (doc.Format != RepositoryDocument.FormatName || doc.Version is not (RepositoryDocument.CurrentVersion or RepositoryDocument.UnauthenticatedVersion))
            {
                throw new RepositoryException($"{layout.Document}: format '{doc.Format}' version {doc.Version} is not supported (expected '{RepositoryDocument.FormatName}' version {RepositoryDocument.CurrentVersion}, or {RepositoryDocument.UnauthenticatedVersion} to upgrade)");
            }
            if (doc.HashAlgorithm != RepositoryDocument.BlockHashAlgorithm)
            {
                throw new RepositoryException($"{layout.Document}: block hash '{doc.HashAlgorithm}' is not supported (expected '{RepositoryDocument.BlockHashAlgorithm}')");
            }
            var key = RepositoryKey.Read(layout, beneath, doc);
            var repository = new BackupRepository(directory, beneath, key) { BlockSize = doc.DefaultBlockSize };
            repository.FaultHook = KillHookFromEnvironment();
            if (doc.Version == RepositoryDocument.UnauthenticatedVersion)
            {
                repository.Upgrade(doc);
            }
            else
            {
                _ = repository.Documents.Read<RepositoryDocument>(layout.Document); // its MAC
            }
            repository.RecoverAll();
            return repository;
        }
        catch
        {
            beneath.Dispose();
            throw;
        }
    }

    private static void Create(RepositoryLayout layout, RepositoryDirectory beneath)
    {
        byte[] key;
        if (beneath.FileExists(layout.KeyFile))
        {
            key = beneath.ReadAll(layout.KeyFile, BlockHasher.KeyLength + 1);
        }
        else
        {
            key = RandomNumberGenerator.GetBytes(BlockHasher.KeyLength);
            beneath.WriteFile(layout.KeyFile, key, createMode: 0x180 /* 0600 */);
        }
        beneath.CreateDirectory(layout.Groups);
        var doc = new RepositoryDocument(RepositoryDocument.FormatName, RepositoryDocument.CurrentVersion, DateTimeOffset.UtcNow, RepositoryKey.Internal, RepositoryDocument.BlockHashAlgorithm, DefaultBlockSize)
        {
            RepositoryId = RepositoryKey.NewRepositoryId(),
        };
        new RepositoryDocuments(beneath, key).Write(layout.Document, doc);
    }

    /// <summary>
    /// Moves the key out of the repository into the host key directory (<see cref="RepositoryKey"/>), refused
    /// (<see cref="RepositoryBusyException"/>) while any group has a writer. Crash-safe order: the external key is
    /// written first, then repository.json switched to it, and REPO/key deleted last (an open reads the key the
    /// document names, so a leftover REPO/key is harmless and a re-run finishes the move). Returns the key's path.
    /// </summary>
    public string MoveKeyOut()
    {
        var locks = new List<GroupLock>();
        try
        {
            foreach (var g in GroupIds())
            {
                locks.Add(GroupLock.Exclusive(Beneath, _layout.Group(g), "key move-out", TimeSpan.Zero));
            }
            var doc = Documents.Read<RepositoryDocument>(_layout.Document);
            var id = doc.RepositoryId ?? RepositoryKey.NewRepositoryId();
            var key = RepositoryKey.Read(_layout, Beneath, doc);
            var path = RepositoryKey.WriteExternal(id, key);
            if (doc.KeyFile != RepositoryKey.External)
            {
                Documents.Write(_layout.Document, doc with { KeyFile = RepositoryKey.External, RepositoryId = id });
            }
            Beneath.Delete(_layout.KeyFile);
            return path;
        }
        finally
        {
            foreach (var l in locks)
            {
                l.Dispose();
            }
        }
    }

    private void RecoverAll()
    {
        var busy = new List<string>();
        foreach (var g in GroupIds())
        {
            if (!Beneath.FileExists(_layout.Journal(g)))
            {
                continue;
            }
            try
            {
                using var l = GroupLock.Exclusive(Beneath, _layout.Group(g), "recovery", TimeSpan.Zero);
                Recover(g);
            }
            catch (RepositoryBusyException)
            {
                busy.Add(g);
            }
        }
        BusyGroupsAtOpen = busy;
    }


    /// <summary>
    /// Starts a backup of a group: takes the group's writer lock, refused (<see cref="RepositoryBusyException"/>) at once if
    /// another writer holds it, after <see cref="ReaderWait"/> if restores or verifies of the group are still reading.
    /// </summary>
    public BackupSession BeginBackup(string groupId, string groupName, CancellationToken ct = default)
    {
        Names.Validate(NameKind.GroupId, groupId, nameof(groupId));
        ArgumentNullException.ThrowIfNull(groupName);
        Beneath.CreateDirectory(_layout.Group(groupId));
        var groupLock = GroupLock.Exclusive(Beneath, _layout.Group(groupId), "backup", ReaderWait, () => RefuseIfPinned(groupId, "backup"), ct);
        try
        {
            if (Beneath.FileExists(_layout.Journal(groupId)))
            {
                Recover(groupId);
            }
            if (ReadGroup(groupId)?.GroupName != groupName)
            {
                Documents.Write(_layout.GroupDocument(groupId), new GroupDocument(groupId, groupName));
            }
            Beneath.CreateDirectory(_layout.Points(groupId));
            Beneath.CreateDirectory(_layout.Files(groupId));
            var points = LoadPoints(groupId);
            var sequence = points.Count == 0 ? 1 : points.Max(p => p.Sequence) + 1;
            var pointId = NewPointId();
            return new BackupSession(this, groupLock, groupId, groupName, pointId, sequence, points.MaxBy(p => p.Sequence));
        }
        catch
        {
            groupLock.Dispose();
            throw;
        }
    }

    private static string NewPointId() =>
        $"{DateTimeOffset.UtcNow:yyyyMMdd'T'HHmmss'Z'}-{Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(4))}";

    /// <summary>Restore points, newest first (all groups, or one).</summary>
    public IReadOnlyList<RestorePointInfo> ListPoints(string? groupId = null)
    {
        var groups = groupId is null ? GroupIds() : [groupId];
        if (groupId is not null)
        {
            Names.Validate(NameKind.GroupId, groupId, nameof(groupId));
        }
        return groups.SelectMany(g => LoadPoints(g))
            .OrderByDescending(p => p.CreatedAt).ThenByDescending(p => p.Sequence)
            .Select(p => p.ToInfo()).ToList();
    }

    public RestorePointInfo? FindPoint(string pointId) => FindPointDocument(pointId)?.ToInfo();

    internal PointDocument? FindPointDocument(string pointId)
    {
        if (!Names.IsValid(NameKind.PointId, pointId))
        {
            return null; // cannot name a point (and must not name a path)
        }
        foreach (var g in GroupIds())
        {
            if (Beneath.FileExists(_layout.Point(g, pointId)))
            {
                return ReadPoint(g, pointId);
            }
        }
        return null;
    }

    /// <summary>The versions of one file, oldest first: the last one is the mirror.</summary>
    internal static List<PointFileDocument> VersionChain(IEnumerable<PointDocument> points, string fileKey) =>
        points.SelectMany(p => p.Files).Where(f => f.FileKey == fileKey)
            .DistinctBy(f => f.VersionId).OrderBy(f => f.VersionSequence).ToList();

    /// <summary>Undo records to apply to the mirror to get <paramref name="versionId"/>, newest first.</summary>
    internal List<string> UndoPathsFor(string groupId, string fileKey, List<PointFileDocument> chain, string versionId)
    {
        var index = chain.FindIndex(v => v.VersionId == versionId);
        if (index < 0)
        {
            throw new RestorePointNotFoundException($"version {versionId} of {fileKey} is not in group {groupId}");
        }
        var paths = new List<string>();
        for (var i = chain.Count - 2; i >= index; i--)
        {
            paths.Add(_layout.Undo(groupId, fileKey, chain[i].VersionId));
        }
        return paths;
    }

    internal void Fault(string phase) => FaultHook?.Invoke(phase);

    /// <summary>Environment variable for crash tests: "PHASE" or "PHASE:N" kills the process (SIGKILL) at the N-th time it reaches PHASE.</summary>
    public const string KillAtVariable = "BACKUPD_TEST_KILL_AT";

    private static Action<string>? KillHookFromEnvironment()
    {
        var spec = Environment.GetEnvironmentVariable(KillAtVariable);
        if (string.IsNullOrEmpty(spec))
        {
            return null;
        }
        var parts = spec.Split(':');
        var wanted = parts.Length > 1 && int.TryParse(parts[1], out var n) ? n : 1;
        var seen = 0;
        return phase =>
        {
            if (phase == parts[0] && ++seen == wanted)
            {
                System.Diagnostics.Process.GetCurrentProcess().Kill(); // SIGKILL: no finally blocks, no flush
            }
        };
    }

    public void Dispose()
    {
        Hasher.Dispose();
        Beneath.Dispose();
    }
}
