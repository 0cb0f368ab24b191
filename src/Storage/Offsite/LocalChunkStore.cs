using Backupd.Storage.Repository;

namespace Backupd.Storage.Offsite;

/// <summary>
/// A copy repository in a directory (a USB disk, an NFS mount, or the server side of `backupd serve`):
/// <c>offsite.json</c>, <c>packs/NAME.pack</c> (the chunks of one stored batch each, <see cref="ChunkPack"/>) and
/// <c>indexes/POINT.idx</c>, all through <see cref="RepositoryDirectory"/> (no links followed, nothing outside the
/// root). Chunks are published before the index that names them, each file by temporary name, fsync and rename,
/// never over an existing one. <c>chunks/XX/ID</c> (one file per chunk, as written before packs) are still read,
/// listed and collected.
/// </summary>
/// <remarks>
/// Where each chunk is stays in memory (read from the packs' tables at the first use, about 80 bytes per chunk: some
/// 300 MB per TiB of unique data at 256 KiB chunks, as restic's and borg's indexes); a chunk another process stored
/// since is found by reading the tables of the packs that appeared.
/// <para>Locks (flocks on <c>lock</c> and <c>writer.lock</c> in the root, as a local repository's group locks): every user
/// of an existing repository holds <c>lock</c> shared; a prune's collection holds it exclusively, so no copy can find a
/// chunk present and then name it in an index while that chunk is being collected. The kernel drops them with the process.</para>
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
    private readonly Lock _gate = new(); // a local target's copy asks, stores and reads from several threads at once
    private readonly ChunkLocations _locations = new();
    private readonly HashSet<string> _damagedPacks = new(StringComparer.Ordinal);
    private readonly HashSet<ChunkId> _dead = []; // collected chunks still inside a pack, until Compact
    private Dictionary<byte, List<ChunkId>>? _byPrefix; // built once per collection
    private bool _loaded;
    private bool _packsReady;
    private bool _directRefused;
    private readonly AlignedBuffer _aligned = new();

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
    private string Packs => _root + "/packs";
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
        if (_dir.List(_root).Any(e => !e.Name.StartsWith('.') && e.Name is not ("chunks" or "packs" or "indexes" or "lock" or "writer.lock")))
        {
            throw new RepositoryException($"{_root} is not empty and holds no copy repository (no {ConfigName}); refusing to create one over other files");
        }
        Guard(() =>
        {
            _dir.CreateDirectory(Packs);
            _dir.CreateDirectory(Indexes);
            _dir.WriteFile(ConfigPath, config); // last: a repository exists only once its directories do
        });
        HoldShared();
    }

    public IReadOnlyList<ChunkId> Missing(IReadOnlyList<ChunkId> ids)
    {
        EnsureLoaded();
        lock (_gate)
        {
            return ids.Where(id => !_locations.Contains(id)).ToList();
        }
    }

    /// <summary>Stores the batch's new chunks as one pack (tmp, fsync, rename, directory fsync); chunks already stored are left out.</summary>
    public void PutChunks(IReadOnlyList<(ChunkId Id, ReadOnlyMemory<byte> Frame)> chunks)
    {
        foreach (var (id, frame) in chunks)
        {
            if (!ChunkSealer.HasValidFraming(frame.Span))
            {
                throw new RepositoryCorruptException($"chunk {id}: {frame.Length} bytes without a valid chunk header; refused (nothing of this batch was stored)");
            }
        }
        EnsureLoaded();
        List<(ChunkId, ReadOnlyMemory<byte>)> fresh;
        lock (_gate)
        {
            var seen = new HashSet<ChunkId>();
            fresh = chunks.Where(c => !_locations.Contains(c.Id) && seen.Add(c.Id)).Select(c => (c.Id, c.Frame)).ToList();
        }
        if (fresh.Count > 0)
        {
            WritePack(fresh);
        }
    }

    /// <summary>Publishes a new pack of <paramref name="frames"/> durably and records where its chunks are; returns its length.</summary>
    private long WritePack(IReadOnlyList<(ChunkId Id, ReadOnlyMemory<byte> Frame)> frames)
    {
        var name = $"{Guid.NewGuid():N}{ChunkPack.Suffix}";
        var (parts, entries) = ChunkPack.Build(frames, RepositoryDirectory.DirectAlignment);
        var length = parts.Sum(p => (long)p.Length);
        Guard(() =>
        {
            if (!_packsReady)
            {
                _dir.CreateDirectory(Packs); // a repository written before packs has none yet
                _packsReady = true;
            }
            if (!WriteDirect(Packs + "/" + name, parts, length))
            {
                _dir.WriteFile(Packs + "/" + name, parts, noReplace: true);
            }
        });
        lock (_gate)
        {
            _locations.AddPack(name, entries);
        }
        return length;
    }

    /// <summary>
    /// Writes a pack with O_DIRECT from one aligned buffer: a pack is written once and read back only by a restore or
    /// verify, so passing it through the page cache only costs the server a copy of every byte (most of its system
    /// time) and evicts what it does use. False where the file system has no O_DIRECT (then never tried again).
    /// </summary>
    private bool WriteDirect(string path, IReadOnlyList<ReadOnlyMemory<byte>> parts, long length)
    {
        if (_directRefused || length > int.MaxValue)
        {
            return false;
        }
        lock (_aligned)
        {
            var buffer = _aligned.Take((int)length);
            var at = 0;
            foreach (var part in parts)
            {
                part.Span.CopyTo(buffer[at..]);
                at += part.Length;
            }
            if (_dir.TryWriteFileDirect(path, buffer, noReplace: true))
            {
                return true;
            }
        }
        _directRefused = true;
        return false;
    }

    public IReadOnlyList<byte[]> GetChunks(IReadOnlyList<ChunkId> ids)
    {
        EnsureLoaded();
        var places = new ChunkLocations.Location[ids.Count];
        var names = new Dictionary<int, string>();
        lock (_gate)
        {
            for (var i = 0; i < ids.Count; i++)
            {
                if (!_locations.TryGet(ids[i], out places[i]))
                {
                    RefreshPacks(); // another process may have stored it since the tables were read
                    if (!_locations.TryGet(ids[i], out places[i]))
                    {
                        throw MissingChunk(ids[i]);
                    }
                }
                if (places[i].Pack != ChunkLocations.Loose)
                {
                    names[places[i].Pack] = _locations.Packs[places[i].Pack]!;
                }
            }
        }
        var handles = new Dictionary<int, Microsoft.Win32.SafeHandles.SafeFileHandle>();
        try
        {
            var frames = new List<byte[]>(ids.Count);
            for (var i = 0; i < ids.Count; i++)
            {
                var at = places[i];
                if (at.Pack == ChunkLocations.Loose)
                {
                    var path = ChunkPath(ids[i]);
                    frames.Add(_dir.FileExists(path) ? _dir.ReadAll(path, MaxFrame) : throw MissingChunk(ids[i]));
                    continue;
                }
                if (!handles.TryGetValue(at.Pack, out var handle))
                {
                    handle = handles[at.Pack] = _dir.OpenFile(Packs + "/" + names[at.Pack], FileMode.Open, FileAccess.Read);
                }
                if (at.Length > MaxFrame)
                {
                    throw new RepositoryCorruptException($"{Packs}/{names[at.Pack]}: chunk {ids[i]} is said to be {at.Length} bytes, more than a chunk can be");
                }
                var frame = new byte[at.Length];
                if (RandomAccess.Read(handle, frame, at.Offset) != frame.Length)
                {
                    throw new RepositoryCorruptException($"{Packs}/{names[at.Pack]}: chunk {ids[i]} was cut short");
                }
                frames.Add(frame);
            }
            return frames;
        }
        finally
        {
            foreach (var handle in handles.Values)
            {
                handle.Dispose();
            }
        }
    }

    private static int MaxFrame => ChunkSealer.MaxFrameLength(ChunkSealer.MaxPlaintext) + 64;

    private RepositoryCorruptException MissingChunk(ChunkId id) => new(
        $"chunk {id} is missing from {_root} (an index names it; the repository is damaged" +
        (_damagedPacks.Count > 0 ? $"; these packs have an unreadable table: {string.Join(", ", _damagedPacks.Order(StringComparer.Ordinal))}" : "") + ")");

    /// <summary>The existing <c>chunks/XX</c> of a repository written before packs (none, and no 256 lookups, for one written since).</summary>
    private List<string> LooseDirectories() => _dir.DirectoryExists(_root + "/chunks")
        ? Enumerable.Range(0, 256).Select(i => $"{_root}/chunks/{i:x2}").Where(_dir.DirectoryExists).ToList()
        : [];

    /// <summary>Reads where the chunks are, once: the loose chunk files and the packs' tables.</summary>
    private void EnsureLoaded()
    {
        lock (_gate)
        {
            if (_loaded)
            {
                return;
            }
            foreach (var dir in LooseDirectories())
            {
                var prefix = dir[^2..];
                foreach (var (name, kind) in _dir.List(dir))
                {
                    if (kind == EntryKind.File && ChunkId.TryParse(name, out var id) && name.StartsWith(prefix, StringComparison.Ordinal))
                    {
                        _locations.AddLoose(id);
                    }
                }
            }
            RefreshPacks();
            _loaded = true;
        }
    }

    /// <summary>Reads the tables of the packs not read yet; a pack whose table is damaged is set aside (its chunks count as missing, so verify reports them and the next copy stores them again).</summary>
    private void RefreshPacks()
    {
        if (!_dir.DirectoryExists(Packs))
        {
            return;
        }
        _packsReady = true;
        foreach (var (name, kind) in _dir.List(Packs))
        {
            if (name.StartsWith('.') || !name.EndsWith(ChunkPack.Suffix, StringComparison.Ordinal) || _locations.Knows(name) || _damagedPacks.Contains(name))
            {
                continue; // a hidden one is an upload that never finished
            }
            var path = Packs + "/" + name;
            try
            {
                if (kind != EntryKind.File)
                {
                    throw new RepositoryCorruptException($"{path}: not a plain file");
                }
                using var handle = _dir.OpenFile(path, FileMode.Open, FileAccess.Read);
                _locations.AddPack(name, ChunkPack.ReadTable(handle, path));
            }
            catch (RepositoryCorruptException)
            {
                _damagedPacks.Add(name);
            }
        }
    }

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
        foreach (var dir in LooseDirectories().Append(Packs).Append(Indexes).Where(_dir.DirectoryExists))
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
        lock (_gate)
        {
            _locations.Clear(); // read again under the exclusive lock: every pack another process wrote is seen
            _damagedPacks.Clear();
            _byPrefix = null; // an earlier collection's grouping would miss the chunks stored since
            _loaded = false;
        }
        EnsureLoaded();
        return removed;
    }

    public IReadOnlyList<ChunkId> ListChunks(byte prefix)
    {
        EnsureLoaded();
        lock (_gate)
        {
            _byPrefix ??= _locations.All.Select(p => p.Key).GroupBy(Prefix).ToDictionary(g => g.Key, g => g.ToList());
            return _byPrefix.TryGetValue(prefix, out var ids) ? ids.Where(id => !_dead.Contains(id) && _locations.Contains(id)).ToList() : [];
        }
    }

    private static byte Prefix(ChunkId id) => (byte)(id.High >> 120);

    /// <summary>
    /// Deletes loose chunk files at once and returns their bytes; a chunk inside a pack is only marked, and
    /// <see cref="Compact"/> rewrites its pack without it.
    /// </summary>
    public long DeleteChunks(IReadOnlyList<ChunkId> ids)
    {
        RequireCollection();
        long freed = 0;
        lock (_gate)
        {
            foreach (var id in ids)
            {
                if (!_locations.TryGet(id, out var at))
                {
                    continue;
                }
                if (at.Pack != ChunkLocations.Loose)
                {
                    _dead.Add(id);
                    continue;
                }
                var path = ChunkPath(id);
                if (_dir.FileExists(path))
                {
                    using (var handle = _dir.OpenFile(path, FileMode.Open, FileAccess.Read))
                    {
                        freed += RandomAccess.GetLength(handle);
                    }
                    _dir.Delete(path);
                }
                _locations.Remove(id);
            }
        }
        return freed;
    }

    /// <summary>
    /// Rewrites each pack holding a deleted chunk with only its live chunks (the new pack durable before the old one
    /// is removed, so a crash leaves at worst a chunk in two packs), removes a pack left with none, and returns the
    /// bytes freed. Chunks a pack holds twice over (a race of two copies) go with it.
    /// </summary>
    public long Compact()
    {
        RequireCollection();
        lock (_gate)
        {
            var byPack = _locations.All.Where(p => p.Value.Pack != ChunkLocations.Loose).GroupBy(p => p.Value.Pack).ToDictionary(g => g.Key, g => g.ToList());
            var affected = _dead.Where(_locations.Contains).Select(id => { _locations.TryGet(id, out var at); return at.Pack; }).ToHashSet();
            long freed = 0;
            foreach (var number in affected.Order())
            {
                var path = Packs + "/" + _locations.Packs[number];
                var live = byPack[number].Where(p => !_dead.Contains(p.Key)).ToList();
                using (var handle = _dir.OpenFile(path, FileMode.Open, FileAccess.Read))
                {
                    freed += RandomAccess.GetLength(handle);
                    var frames = new List<(ChunkId, ReadOnlyMemory<byte>)>(live.Count);
                    foreach (var (id, at) in live)
                    {
                        var frame = new byte[at.Length];
                        if (RandomAccess.Read(handle, frame, at.Offset) != frame.Length)
                        {
                            throw new RepositoryCorruptException($"{path}: chunk {id} was cut short; nothing of this pack was removed");
                        }
                        frames.Add((id, frame));
                    }
                    foreach (var (id, _) in byPack[number])
                    {
                        _locations.Remove(id); // the live ones are placed in the new pack
                    }
                    if (frames.Count > 0)
                    {
                        freed -= WritePack(frames);
                    }
                }
                _dir.Delete(path);
                _locations.ForgetPack(number);
            }
            _dead.Clear();
            _byPrefix = null;
            return freed;
        }
    }

    private void RequireCollection()
    {
        if (!_collecting)
        {
            throw new InvalidOperationException("chunks are deleted only by a collection (BeginCollection first)");
        }
    }

    public void Dispose()
    {
        lock (_aligned)
        {
            _aligned.Dispose();
        }
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
