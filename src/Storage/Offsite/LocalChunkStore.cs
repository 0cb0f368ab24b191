using Backupd.Storage.Repository;

namespace Backupd.Storage.Offsite;

/// <summary>
/// A copy repository in a directory (a USB disk, an NFS mount, or the server side of `backupd serve`):
/// <c>offsite.json</c>, <c>chunks/XX/ID</c> (XX: the id's first two hex digits) and <c>indexes/POINT.idx</c>, all
/// through <see cref="RepositoryDirectory"/> (no links followed, nothing outside the root). Chunks are published
/// before the index that names them, each file by temporary name, fsync and rename, never over an existing one.
/// </summary>
/// <remarks>
/// Locks (flocks on <c>lock</c> and <c>writer.lock</c> in the root, as a local repository's group locks): every user
/// of an existing repository holds <c>lock</c> shared; a prune's collection holds it exclusively, so no copy can find a
/// chunk present and then name it in an index while that chunk is being collected. The kernel drops them with the process.
/// </remarks>
public sealed class LocalChunkStore : IChunkStore, IChunkCollector
{
    private static readonly TimeSpan DefaultCollectionWait = TimeSpan.FromSeconds(10);
    private readonly TimeSpan _collectionWait;
    private GroupLock? _lock;
    private bool _collecting;
    public const string ConfigName = "offsite.json";
    private const string IndexSuffix = ".idx";
    private const long MaxConfigBytes = 64 << 10;
    private readonly RepositoryDirectory _dir;
    private readonly string _root;

    private LocalChunkStore(string root, bool appendOnly, TimeSpan collectionWait)
    {
        _collectionWait = collectionWait;
        _root = root;
        AppendOnly = appendOnly;
        _dir = new RepositoryDirectory(root);
    }

    /// <summary>Opens the directory (created when missing, so a first copy can make the repository).</summary>
    /// <param name="collectionWait">How long a prune waits for the copies, restores and verifies holding the repository (default 10 s).</param>
    public static LocalChunkStore Open(string root, bool appendOnly = false, TimeSpan? collectionWait = null)
    {
        root = Path.TrimEndingDirectorySeparator(Path.GetFullPath(root));
        Directory.CreateDirectory(root); // the root is the operator's path; everything below goes through RepositoryDirectory
        return new LocalChunkStore(root, appendOnly, collectionWait ?? DefaultCollectionWait);
    }

    public string Location => _root;
    public bool AppendOnly { get; }

    private string ConfigPath => _root + "/" + ConfigName;
    private string Indexes => _root + "/indexes";
    private string ChunkPath(ChunkId id)
    {
        var hex = id.ToHex();
        return $"{_root}/chunks/{hex[..2]}/{hex}";
    }

    public byte[]? ReadConfig()
    {
        if (!_dir.FileExists(ConfigPath))
        {
            return null;
        }
        HoldShared();
        return _dir.ReadAll(ConfigPath, MaxConfigBytes);
    }

    /// <summary>The shared lock of a user of the repository, taken once it exists (never in a directory that is not one).</summary>
    private void HoldShared()
    {
        if (_lock is not null)
        {
            return;
        }
        try
        {
            _lock = GroupLock.Shared(_dir, _root, "copy");
        }
        catch (RepositoryBusyException e)
        {
            throw new RepositoryBusyException($"{_root}: a prune is collecting unreferenced chunks there; try again when it ends (a policy's copy retries by itself)", e);
        }
    }

    public void CreateConfig(byte[] config)
    {
        if (_dir.FileExists(ConfigPath))
        {
            throw new RepositoryException($"{ConfigPath} exists: {_root} already holds a copy repository");
        }
        if (_dir.List(_root).Any(e => !e.Name.StartsWith('.') && e.Name is not ("chunks" or "indexes" or "lock" or "writer.lock")))
        {
            throw new RepositoryException($"{_root} is not empty and holds no copy repository (no {ConfigName}); refusing to create one over other files");
        }
        Guard(() =>
        {
            for (var i = 0; i < 256; i++)
            {
                _dir.CreateDirectory($"{_root}/chunks/{i:x2}");
            }
            _dir.CreateDirectory(Indexes);
            _dir.WriteFile(ConfigPath, config); // last: a repository exists only once its directories do
        });
        HoldShared();
    }

    public IReadOnlyList<ChunkId> Missing(IReadOnlyList<ChunkId> ids) => ids.Where(id => !_dir.FileExists(ChunkPath(id))).ToList();

    public void PutChunks(IReadOnlyList<(ChunkId Id, ReadOnlyMemory<byte> Frame)> chunks)
    {
        foreach (var (id, frame) in chunks)
        {
            if (!ChunkSealer.HasValidFraming(frame.Span))
            {
                throw new RepositoryCorruptException($"chunk {id}: {frame.Length} bytes without a valid chunk header; refused (nothing of this batch was stored)");
            }
        }
        Guard(() => _dir.WriteFiles(chunks.Select(c => (ChunkPath(c.Id), c.Frame)).ToList(), noReplace: true));
    }

    public IReadOnlyList<byte[]> GetChunks(IReadOnlyList<ChunkId> ids) => ids.Select(id =>
    {
        var path = ChunkPath(id);
        if (!_dir.FileExists(path))
        {
            throw new RepositoryCorruptException($"chunk {id} is missing from {_root} (an index names it; the repository is damaged)");
        }
        return _dir.ReadAll(path, ChunkSealer.MaxFrameLength(ChunkSealer.MaxPlaintext) + 64);
    }).ToList();

    public IIndexUpload BeginIndex(string name)
    {
        Names.Validate(NameKind.PointId, name, "index name");
        var final = Indexes + "/" + name + IndexSuffix;
        if (_dir.FileExists(final))
        {
            throw new ChunkStoreRefusedException($"{final} exists; an index is never replaced");
        }
        var temp = $"{Indexes}/.{name}.{Guid.NewGuid():N}.tmp";
        return new Upload(this, temp, final);
    }

    public IReadOnlyList<(string Name, long Length)> ListIndexes()
    {
        if (!_dir.DirectoryExists(Indexes))
        {
            return [];
        }
        var result = new List<(string, long)>();
        foreach (var (entry, kind) in _dir.List(Indexes))
        {
            if (entry.StartsWith('.') || !entry.EndsWith(IndexSuffix, StringComparison.Ordinal))
            {
                continue; // an upload that never committed (a killed client or server)
            }
            var name = entry[..^IndexSuffix.Length];
            if (kind != EntryKind.File || !Names.IsValid(NameKind.PointId, name))
            {
                throw new RepositoryCorruptException($"{Indexes}/{entry}: not a plain index file of a point id; refused");
            }
            using var handle = _dir.OpenFile(Indexes + "/" + entry, FileMode.Open, FileAccess.Read);
            result.Add((name, RandomAccess.GetLength(handle)));
        }
        return result.OrderBy(r => r.Item1, StringComparer.Ordinal).ToList();
    }

    public Stream OpenIndex(string name)
    {
        Names.Validate(NameKind.PointId, name, "index name");
        var path = Indexes + "/" + name + IndexSuffix;
        return _dir.FileExists(path) ? _dir.OpenRead(path) : throw new RestorePointNotFoundException($"{_root} holds no copy of point {name}");
    }

    public void DeleteIndex(string name)
    {
        Names.Validate(NameKind.PointId, name, "index name");
        if (AppendOnly)
        {
            throw new ChunkStoreRefusedException($"{_root} is served append-only: deleting the copy of {name} is refused (prune on the repository's host, without --append-only)");
        }
        _dir.Delete(Indexes + "/" + name + IndexSuffix);
    }

    public int BeginCollection()
    {
        if (AppendOnly)
        {
            throw new ChunkStoreRefusedException($"{_root} is served append-only: pruning is refused (prune on the repository's host, or through a key whose forced `backupd serve` has no --append-only)");
        }
        _lock?.Dispose();
        _lock = null;
        try
        {
            _lock = GroupLock.Exclusive(_dir, _root, "prune", _collectionWait);
        }
        catch (RepositoryBusyException e)
        {
            throw new RepositoryBusyException($"{_root} is in use by a copy, restore or verify (waited {_collectionWait.TotalSeconds:0} s); prune refused, nothing was removed; try again when it ends", e);
        }
        _collecting = true;
        // Held exclusively: no upload is in progress, so every temporary file is what a killed client or server left.
        var removed = 0;
        foreach (var dir in Enumerable.Range(0, 256).Select(i => $"{_root}/chunks/{i:x2}").Append(Indexes).Where(_dir.DirectoryExists))
        {
            foreach (var (name, kind) in _dir.List(dir))
            {
                if (kind == EntryKind.File && name.StartsWith('.') && name.EndsWith(".tmp", StringComparison.Ordinal))
                {
                    _dir.Delete(dir + "/" + name);
                    removed++;
                }
            }
        }
        return removed;
    }

    public IReadOnlyList<ChunkId> ListChunks(byte prefix)
    {
        var dir = $"{_root}/chunks/{prefix:x2}";
        if (!_dir.DirectoryExists(dir))
        {
            return [];
        }
        var ids = new List<ChunkId>();
        foreach (var (name, kind) in _dir.List(dir))
        {
            if (kind == EntryKind.File && ChunkId.TryParse(name, out var id) && name.StartsWith($"{prefix:x2}", StringComparison.Ordinal))
            {
                ids.Add(id);
            }
        }
        return ids;
    }

    public long DeleteChunks(IReadOnlyList<ChunkId> ids)
    {
        if (!_collecting)
        {
            throw new InvalidOperationException("chunks are deleted only by a collection (BeginCollection first)");
        }
        long freed = 0;
        foreach (var id in ids)
        {
            var path = ChunkPath(id);
            if (!_dir.FileExists(path))
            {
                continue;
            }
            using (var handle = _dir.OpenFile(path, FileMode.Open, FileAccess.Read))
            {
                freed += RandomAccess.GetLength(handle);
            }
            _dir.Delete(path);
        }
        return freed;
    }

    public void Dispose()
    {
        _lock?.Dispose();
        _dir.Dispose();
    }

    /// <summary>A full file system is told as such: the copy stops, nothing half-written stays visible.</summary>
    private void Guard(Action action)
    {
        try
        {
            action();
        }
        catch (IOException e) when (e.HResult == 28 || e.Message.Contains("No space left", StringComparison.Ordinal) || e.Message.Contains("quota", StringComparison.OrdinalIgnoreCase))
        {
            throw new ChunkStoreRefusedException($"{_root}: the file system is full ({e.Message}); the copy stopped, no incomplete point is listed, and the chunks already written are kept for the next attempt");
        }
    }

    private sealed class Upload(LocalChunkStore store, string temp, string final) : IIndexUpload
    {
        private FileStream? _stream = store._dir.OpenStream(temp, FileMode.CreateNew, FileAccess.Write);
        private bool _committed;

        public void Write(ReadOnlySpan<byte> data)
        {
            var stream = _stream ?? throw new InvalidOperationException("index upload already ended");
            try
            {
                stream.Write(data);
            }
            catch (IOException e) when (e.HResult == 28 || e.Message.Contains("No space left", StringComparison.Ordinal))
            {
                throw new ChunkStoreRefusedException($"{store._root}: the file system is full ({e.Message}); the copy stopped, no incomplete point is listed");
            }
        }

        public void Commit()
        {
            var stream = _stream ?? throw new InvalidOperationException("index upload already ended");
            store.Guard(() =>
            {
                stream.Flush(flushToDisk: true);
                stream.Dispose();
                _stream = null;
                store._dir.Rename(temp, final, noReplace: true);
            });
            _committed = true;
        }

        public void Dispose()
        {
            _stream?.Dispose();
            _stream = null;
            if (!_committed)
            {
                store._dir.Delete(temp);
            }
        }
    }
}
