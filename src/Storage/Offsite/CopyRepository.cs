using System.Buffers;
using System.Buffers.Binary;
using Backupd.Storage.Repository;

namespace Backupd.Storage.Offsite;

/// <summary>What one copy did: <see cref="ChunksSent"/> of <see cref="Chunks"/> were sent (<see cref="BytesSent"/> sealed bytes), the rest were stored already or zero.</summary>
public sealed record CopyReport(string PointId, bool AlreadyThere, long BytesRead, long Chunks, long ZeroChunks, long ChunksSent, long BytesSent, long IndexBytes, TimeSpan Elapsed)
{
    /// <summary>Where the time went (null when nothing was copied).</summary>
    public CopyStageTimes? Stages { get; init; }

    /// <summary>Chunks taken from the copy of an earlier point without being read (their blocks did not change since).</summary>
    public long ChunksUnchanged { get; init; }
}

/// <summary>
/// Per step of a copy, the time spent working (a parallel step's time summed over its threads), so a slow copy
/// names its bottleneck: <see cref="Read"/> the local reading (and its digest check), <see cref="Name"/> the chunk
/// ids, <see cref="Ask"/> the missing-chunks questions, <see cref="Seal"/> compression and encryption,
/// <see cref="Send"/> the uploads (the store's durable writes included); <see cref="ReaderWaited"/> how long the
/// reader waited for room (the other steps were behind), <see cref="MaxBatchesInFlight"/> the most batches held.
/// </summary>
public sealed record CopyStageTimes(TimeSpan Read, TimeSpan Name, TimeSpan Ask, TimeSpan Seal, TimeSpan Send, TimeSpan Ack, TimeSpan ReaderWaited, int MaxBatchesInFlight);

/// <summary>
/// What a prune of a copy did (or, with <see cref="DryRun"/>, would do): the indexes removed, then the chunks no
/// remaining index names (<see cref="BytesFreed"/> is counted only when they are really deleted), and the temporary
/// files interrupted uploads had left.
/// </summary>
public sealed record CopyPruneReport(IReadOnlyList<string> IndexesRemoved, long ChunksRemoved, long BytesFreed, long ChunksKept, int LeftoversRemoved, bool DryRun);

/// <summary>One problem found by <see cref="CopyRepository.Verify"/>, or none.</summary>
public sealed record CopyVerifyReport(bool Ok, IReadOnlyList<string> Problems, int Indexes, long ChunksChecked, long ChunksRead);

/// <summary>
/// A copy repository (docs/repository-format.md, "Copy repositories"), seen from the side that holds the key:
/// copies a committed local restore point into it, lists, restores and verifies. The <see cref="IChunkStore"/>
/// under it only ever sees sealed chunks and sealed indexes. Memory stays bounded: a file is read 8 MiB at a time,
/// chunk ids go through a temporary file, and indexes are read as streams.
/// </summary>
public sealed class CopyRepository : IDisposable
{
    private const int MaxBatch = 128;
    private const int MaxHeaderBytes = 64 << 20;
    private readonly IChunkStore _store;
    private readonly OffsiteKey _key;
    private readonly ChunkSealer _sealer;
    private readonly int? _chunkSize;

    /// <summary>
    /// The chunk size of a new copy repository. Coarser than a local block (64 KiB) because every chunk costs the
    /// store a file and an fsync, and every point's index 32 bytes per chunk (a 2 TiB disk: 256 MiB of ids at
    /// 256 KiB, 1 GiB at 64 KiB); finer than the peers' ~1–4 MiB so a scattered change still sends little.
    /// Measured in bench/README.md ("Offsite copies").
    /// </summary>
    public const int DefaultChunkSize = 256 << 10;

    private CopyRepository(IChunkStore store, OffsiteKey key, int? chunkSize)
    {
        _store = store;
        _key = key;
        _sealer = new ChunkSealer(key);
        _chunkSize = chunkSize;
    }

    /// <summary>A file's chunks: its local blocks, grouped up to the repository's chunk size (both powers of two).</summary>
    private int ChunkSizeFor(int blockSize) => Math.Max(blockSize, _chunkSize ?? blockSize);

    public string Location => _store.Location;

    /// <summary>
    /// Opens the copy repository in <paramref name="store"/> with <paramref name="key"/>; with <paramref name="create"/>
    /// an empty store becomes one. A wrong key throws <see cref="WrongKeyException"/> before anything is read.
    /// </summary>
    /// <param name="chunkSize">The chunk size of a repository created here (an existing one keeps its own).</param>
    public static CopyRepository Open(IChunkStore store, OffsiteKey key, bool create, int chunkSize = DefaultChunkSize)
    {
        var where = $"{store.Location}/{LocalChunkStore.ConfigName}";
        var bytes = store.ReadConfig();
        if (bytes is null)
        {
            if (!create)
            {
                throw new RestorePointNotFoundException($"{store.Location} holds no copy repository (no {LocalChunkStore.ConfigName}); a first `backupd copy` there creates one");
            }
            var config = OffsiteConfig.Create(key, chunkSize);
            store.CreateConfig(Json.Serialize(config));
            bytes = store.ReadConfig() ?? throw new RepositoryException($"{where}: created but not readable");
        }
        var opened = Json.Parse<OffsiteConfig>(where, bytes);
        opened.Check(key, where);
        return new CopyRepository(store, key, opened.ChunkSize);
    }

    /// <summary>
    /// Copies <paramref name="pointId"/> of <paramref name="local"/>: each file read once (digest-checked against
    /// the local record), cut into chunks (<see cref="ChunkSizeFor"/>), only the chunks the store lacks sealed and sent, then
    /// the index published. Until then the copy does not list the point; an interrupted copy leaves only chunks,
    /// which the next one does not send again. A point already copied is left as it is.
    /// The steps overlap (<see cref="BatchPipeline{T}"/>): while one 8 MiB batch is read, others are named, asked
    /// about, sealed and sent; questions and uploads go to the store in file order, at most
    /// <see cref="BatchesInFlight"/> batches are held at once.
    /// </summary>
    public CopyReport Copy(BackupRepository local, string pointId, IProgress<long>? progress, CancellationToken ct)
    {
        var watch = System.Diagnostics.Stopwatch.StartNew();
        var point = local.RequirePoint(pointId);
        if (_store.ListIndexes().Any(i => i.Name == pointId))
        {
            return new CopyReport(pointId, true, 0, 0, 0, 0, 0, 0, watch.Elapsed);
        }
        using var ids = new FileStream(Path.Combine(Path.GetTempPath(), $"backupd-copy-{Guid.NewGuid():N}.ids"), FileMode.CreateNew, FileAccess.ReadWrite, FileShare.None, 1 << 16, FileOptions.DeleteOnClose);
        var files = new List<CopyIndexFile>();
        var stats = new Stats();
        var previous = PreviousCopy(local, point);
        long done = 0;
        foreach (var file in point.Files)
        {
            using var digest = _sealer.NewFileDigest(file.FileSize);
            var before = done;
            var relay = progress is null ? null : new SyncProgress(p => progress.Report(before + p));
            var sink = new FileSink(ids, digest);
            var reading = System.Diagnostics.Stopwatch.StartNew();
            var chunkSize = ChunkSizeFor(file.BlockSize);
            var earlier = previous?.Header.Files.FirstOrDefault(f => f.FileKey == file.FileKey && f.BlockSize == chunkSize);
            using var changes = earlier is null ? null : local.ChangesSince(point, file, earlier.VersionId, earlier.LocalDigest);
            using (var pipeline = new BatchPipeline<CopyBatch>(Steps(sink, stats), Workers, BatchesInFlight, ct))
            {
                if (changes is not null)
                {
                    stats.BytesRead += CopyChanges(previous!, earlier!, changes, file.FileKey, file.FileSize, chunkSize, pipeline, relay, ct);
                }
                else
                {
                    local.ReadFileVersion(point, file, (offset, data, zero, blockSize) =>
                    {
                        var batch = CopyBatch.Rent(data, zero, blockSize, chunkSize);
                        pipeline.Submit(batch);
                    }, relay, ct);
                    stats.BytesRead += file.FileSize;
                }
                pipeline.Complete();
                reading.Stop();
                stats.Add(pipeline, reading.Elapsed);
            }
            done += file.FileSize;
            files.Add(new CopyIndexFile(file.FileKey, file.VersionId, file.SourcePath, file.Format, file.BackingFile, file.VirtualSize,
                file.FileSize, chunkSize, sink.Chunks, digest.Finish(), file.Digest));
        }
        var header = new CopyIndexHeader(CopyIndexHeader.FormatName, CopyIndexHeader.CurrentVersion, point.PointId, point.GroupId, point.GroupName,
            point.Sequence, point.CreatedAt, DateTimeOffset.UtcNow, new Dictionary<string, string>(point.Metadata), files);
        var indexBytes = WriteIndex(header, ids);
        return new CopyReport(pointId, false, stats.BytesRead, stats.Chunks, stats.Zero, stats.New, stats.Sent, indexBytes, watch.Elapsed)
        {
            Stages = stats.Times(),
            ChunksUnchanged = stats.Unchanged,
        };
    }

    /// <summary>The copy here of the newest local point of the same group before <paramref name="point"/>, if any.</summary>
    private PreviousPoint? PreviousCopy(BackupRepository local, PointDocument point)
    {
        var here = _store.ListIndexes().Select(i => i.Name).ToHashSet(StringComparer.Ordinal);
        var earlier = local.LoadPoints(point.GroupId).Where(p => p.Sequence < point.Sequence && here.Contains(p.PointId)).MaxBy(p => p.Sequence);
        if (earlier is null)
        {
            return null;
        }
        return new PreviousPoint(earlier.PointId, ReadHeader(earlier.PointId));
    }

    private sealed record PreviousPoint(string PointId, CopyIndexHeader Header);

    /// <summary>
    /// A file whose previous version this store already holds: the chunks that lie wholly outside the changed ranges
    /// keep that copy's ids (their bytes are the same: <see cref="BackupRepository.ChangesSince"/>) and are neither
    /// read nor named nor asked about; the others are read from the mirror (checked against its signature) and go
    /// through the steps as in a full read. Returns the bytes read.
    /// </summary>
    private long CopyChanges(PreviousPoint previous, CopyIndexFile earlier, MirrorChanges changes, string fileKey, long fileSize,
        int chunkSize, BatchPipeline<CopyBatch> pipeline, IProgress<long>? progress, CancellationToken ct)
    {
        var chunkCount = (fileSize + chunkSize - 1) / chunkSize;
        var changed = new System.Collections.BitArray(checked((int)Math.Max(chunkCount, 1)));
        foreach (var (offset, length) in changes.Ranges)
        {
            for (var c = offset / chunkSize; c < chunkCount && c * chunkSize < offset + length; c++)
            {
                changed[(int)c] = true;
            }
        }
        for (var c = changes.TailFrom / chunkSize; c < chunkCount; c++)
        {
            if (Math.Min((c + 1) * chunkSize, fileSize) > changes.TailFrom || c >= earlier.ChunkCount)
            {
                changed[(int)c] = true;
            }
        }
        MarkLostChunks(previous, earlier, changed, chunkCount, ct);
        using var reader = OpenIndex(previous.PointId, out var header);
        SkipTo(reader, header, header.Files.First(f => f.FileKey == earlier.FileKey));
        var previousIds = new IdCursor(reader, earlier.ChunkCount);
        var perRead = Math.Max(1, ReadBytes / chunkSize);
        var buffer = ArrayPool<byte>.Shared.Rent(perRead * chunkSize);
        var zero = new bool[perRead * chunkSize / changes.BlockSize];
        long read = 0;
        try
        {
            for (long c = 0; c < chunkCount;)
            {
                ct.ThrowIfCancellationRequested();
                var state = changed[(int)c];
                var end = c + 1;
                while (end < chunkCount && changed[(int)end] == state && end - c < (state ? perRead : MaxReusedPerBatch))
                {
                    end++;
                }
                if (state)
                {
                    var n = changes.Read(c * chunkSize, (int)((end - c) * chunkSize), buffer, zero, fileKey);
                    var blocks = (n + changes.BlockSize - 1) / changes.BlockSize;
                    pipeline.Submit(CopyBatch.Rent(buffer.AsSpan(0, n), zero.AsSpan(0, blocks), changes.BlockSize, chunkSize));
                    read += n;
                }
                else
                {
                    pipeline.Submit(CopyBatch.Reused(previousIds.Take(c, (int)(end - c))));
                }
                progress?.Report(Math.Min(fileSize, end * chunkSize));
                c = end;
            }
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(buffer);
        }
        return read;
    }

    /// <summary>
    /// Asks the store about the earlier copy's ids of the unchanged chunks (32 bytes each, in questions of at most
    /// <see cref="MaxReusedPerBatch"/>) and marks the ones it lacks as changed, so they are read and sent again: a
    /// chunk lost from the store since is healed by the next copy, as with a full read.
    /// </summary>
    private void MarkLostChunks(PreviousPoint previous, CopyIndexFile earlier, System.Collections.BitArray changed, long chunkCount, CancellationToken ct)
    {
        using var reader = OpenIndex(previous.PointId, out var header);
        SkipTo(reader, header, header.Files.First(f => f.FileKey == earlier.FileKey));
        var ids = new IdCursor(reader, earlier.ChunkCount);
        for (long c = 0; c < chunkCount; c += MaxReusedPerBatch)
        {
            ct.ThrowIfCancellationRequested();
            var n = (int)Math.Min(MaxReusedPerBatch, Math.Min(chunkCount, earlier.ChunkCount) - c);
            if (n <= 0)
            {
                return;
            }
            var batch = ids.Take(c, n);
            var asked = batch.Where((id, i) => !changed[(int)(c + i)] && !id.IsZero).Distinct().ToList();
            if (asked.Count == 0)
            {
                continue;
            }
            var lost = _store.Missing(asked).ToHashSet();
            for (var i = 0; i < n && lost.Count > 0; i++)
            {
                if (lost.Contains(batch[i]))
                {
                    changed[(int)(c + i)] = true;
                }
            }
        }
    }

    /// <summary>How much a changed run reads at once (as a full read's window).</summary>
    private const int ReadBytes = 8 << 20;

    /// <summary>Ids of unchanged chunks per batch: the batch only carries them to the index's list in order.</summary>
    private const int MaxReusedPerBatch = 1 << 15;

    /// <summary>A file's ids in an earlier index, read forward only.</summary>
    private sealed class IdCursor(SealedReader reader, long count)
    {
        private readonly byte[] _bytes = new byte[1 << 16];
        private long _at;

        public ChunkId[] Take(long from, int n)
        {
            if (from < _at || from + n > count)
            {
                throw new InvalidOperationException($"ids {from}..{from + n} asked of {count}, already at {_at}"); // a bug, not the store
            }
            for (var skip = (from - _at) * ChunkId.Length; skip > 0; skip -= _bytes.Length)
            {
                reader.ReadFully(_bytes.AsSpan(0, (int)Math.Min(_bytes.Length, skip)));
            }
            var ids = new ChunkId[n];
            for (var i = 0; i < n;)
            {
                var part = Math.Min(n - i, _bytes.Length / ChunkId.Length);
                reader.ReadFully(_bytes.AsSpan(0, part * ChunkId.Length));
                for (var j = 0; j < part; j++)
                {
                    ids[i + j] = ChunkId.Read(_bytes.AsSpan(j * ChunkId.Length));
                }
                i += part;
            }
            _at = from + n;
            return ids;
        }
    }

    /// <summary>Threads for the parallel steps (naming, sealing): one per core.</summary>
    private static int Workers => Math.Max(2, Environment.ProcessorCount);

    /// <summary>Batches (8 MiB read, up to as much sealed) held at once: enough to keep every step busy, never more.</summary>
    public static int BatchesInFlight => Math.Clamp(Workers + 2, 4, 12);

    /// <summary>
    /// name (parallel): the ids of the non-zero blocks; ask (in order): which the store lacks; seal (parallel): those
    /// compressed and encrypted; send (in order): handed to the store; ack (in order): durable there (over a link,
    /// the next batch is sent meanwhile), then the batch's ids appended to the index's list.
    /// </summary>
    private PipelineStep<CopyBatch>[] Steps(FileSink sink, Stats stats) =>
    [
        new("name", false, b => b.Name(_sealer)),
        new("ask", true, b => b.Missing = b.FirstAt.Count == 0 ? [] : _store.Missing(b.FirstAt.Keys.ToList())),
        new("seal", false, b => b.Seal(_sealer)),
        new("send", true, b => b.Stored = b.Frames.Length > 0 ? _store.BeginPutChunks(b.Frames) : null),
        new("ack", true, b =>
        {
            b.Stored?.Invoke();
            sink.Append(b, stats);
            b.Return();
        }),
    ];

    private sealed class Stats
    {
        public long BytesRead;
        public long Chunks;
        public long Zero;
        public long New;
        public long Sent;
        public long Unchanged;
        private readonly Dictionary<string, TimeSpan> _busy = new(StringComparer.Ordinal);
        private TimeSpan _read;
        private TimeSpan _waited;
        private int _maxInFlight;

        public void Add(BatchPipeline<CopyBatch> pipeline, TimeSpan reading)
        {
            foreach (var (step, busy) in pipeline.Busy)
            {
                _busy[step] = _busy.GetValueOrDefault(step) + busy;
            }
            _read += reading - pipeline.WaitedForRoom;
            _waited += pipeline.WaitedForRoom;
            _maxInFlight = Math.Max(_maxInFlight, pipeline.MaxInFlight);
        }

        public CopyStageTimes Times() => new(_read, _busy.GetValueOrDefault("name"), _busy.GetValueOrDefault("ask"), _busy.GetValueOrDefault("seal"),
            _busy.GetValueOrDefault("send"), _busy.GetValueOrDefault("ack"), _waited, _maxInFlight);
    }

    /// <summary>Where a file's chunk ids go, in order: the temporary id list of the index, and the file digest.</summary>
    private sealed class FileSink(Stream ids, ChunkSealer.FileDigest digest)
    {
        public long Chunks { get; private set; }

        public void Append(CopyBatch b, Stats stats)
        {
            var bytes = new byte[b.Blocks * ChunkId.Length];
            var zero = 0;
            for (var i = 0; i < b.Blocks; i++)
            {
                b.Ids[i].Write(bytes.AsSpan(i * ChunkId.Length));
                zero += b.Ids[i].IsZero ? 1 : 0;
            }
            ids.Write(bytes);
            digest.Add(bytes);
            Chunks += b.Blocks;
            stats.Chunks += b.Blocks;
            stats.Unchanged += b.IsReused ? b.Blocks : 0;
            stats.Zero += zero;
            stats.New += b.Frames.Length;
            stats.Sent += b.Frames.Sum(f => (long)f.Frame.Length);
        }
    }

    /// <summary>One read buffer's chunks on their way through the steps; its data buffer is pooled.</summary>
    private sealed class CopyBatch
    {
        private byte[] _data = [];
        private byte[]? _sealed;
        private int _length;
        private bool[] _zero = [];
        private int _chunkSize;

        /// <summary>The batch's chunks (the name says what the index counts them in).</summary>
        public int Blocks => _zero.Length;
        public ChunkId[] Ids { get; private set; } = [];
        public Dictionary<ChunkId, int> FirstAt { get; } = [];
        public IReadOnlyList<ChunkId> Missing { get; set; } = [];
        public (ChunkId Id, ReadOnlyMemory<byte> Frame)[] Frames { get; private set; } = [];

        public bool IsReused { get; private init; }

        /// <summary>Waits until the store holds <see cref="Frames"/> durably (null: nothing was sent).</summary>
        public Action? Stored { get; set; }

        /// <param name="zero">Per local block of <paramref name="blockSize"/>: all zero; a chunk is zero when all its blocks are.</param>
        public static CopyBatch Rent(ReadOnlySpan<byte> data, ReadOnlySpan<bool> zero, int blockSize, int chunkSize)
        {
            var perChunk = chunkSize / blockSize;
            var chunkZero = new bool[(zero.Length + perChunk - 1) / perChunk];
            for (var c = 0; c < chunkZero.Length; c++)
            {
                chunkZero[c] = !zero.Slice(c * perChunk, Math.Min(perChunk, zero.Length - (c * perChunk))).Contains(false);
            }
            var b = new CopyBatch { _data = ArrayPool<byte>.Shared.Rent(data.Length), _length = data.Length, _zero = chunkZero, _chunkSize = chunkSize };
            data.CopyTo(b._data);
            // A zero block may be a hole the reader only flagged (its bytes are stale): inside a chunk with data, clear it.
            for (var i = 0; perChunk > 1 && i < zero.Length; i++)
            {
                if (zero[i] && !chunkZero[i / perChunk])
                {
                    b._data.AsSpan(i * blockSize, Math.Min(blockSize, data.Length - (i * blockSize))).Clear();
                }
            }
            return b;
        }

        /// <summary>A batch of chunks whose ids an earlier copy already has: nothing to read, name, ask or send.</summary>
        public static CopyBatch Reused(ChunkId[] ids) => new() { _zero = new bool[ids.Length], Ids = ids, IsReused = true };

        public void Name(ChunkSealer sealer)
        {
            if (IsReused)
            {
                return;
            }
            Ids = new ChunkId[Blocks];
            for (var i = 0; i < Blocks; i++)
            {
                if (!_zero[i])
                {
                    Ids[i] = sealer.Id(Block(i));
                    FirstAt.TryAdd(Ids[i], i);
                }
            }
        }

        /// <summary>Seals the missing chunks one after another into one pooled buffer (returned with the batch).</summary>
        public void Seal(ChunkSealer sealer)
        {
            if (Missing.Count == 0)
            {
                return;
            }
            Frames = new (ChunkId, ReadOnlyMemory<byte>)[Missing.Count];
            var room = Missing.Sum(id => (long)ChunkSealer.MaxFrameLength(Block(FirstAt[id]).Length));
            _sealed = ArrayPool<byte>.Shared.Rent((int)room);
            var at = 0;
            for (var j = 0; j < Frames.Length; j++)
            {
                var length = sealer.Seal(Missing[j], Block(FirstAt[Missing[j]]), _sealed.AsSpan(at));
                Frames[j] = (Missing[j], _sealed.AsMemory(at, length));
                at += length;
            }
        }

        public void Return()
        {
            if (_data.Length > 0)
            {
                ArrayPool<byte>.Shared.Return(_data);
            }
            _data = [];
            if (_sealed is not null)
            {
                ArrayPool<byte>.Shared.Return(_sealed);
                _sealed = null;
            }
            Frames = [];
        }

        private ReadOnlySpan<byte> Block(int i) => CopyRepository.Block(_data, _length, _chunkSize, i);
    }

    private static ReadOnlySpan<byte> Block(byte[] data, int length, int blockSize, int i) =>
        data.AsSpan(i * blockSize, Math.Min(blockSize, length - (i * blockSize)));

    /// <summary>The index: header length (u32) and header JSON, then every file's chunk ids in order, sealed; published last.</summary>
    private long WriteIndex(CopyIndexHeader header, Stream ids)
    {
        using var upload = _store.BeginIndex(header.PointId);
        var counter = new UploadStream(upload);
        using (var sealedOut = new SealedWriter(counter, _key.DataKey, header.PointId))
        {
            var json = Json.Serialize(header);
            Span<byte> length = stackalloc byte[4];
            BinaryPrimitives.WriteInt32BigEndian(length, json.Length);
            sealedOut.Write(length);
            sealedOut.Write(json);
            ids.Position = 0;
            ids.CopyTo(sealedOut, 1 << 20);
            sealedOut.Complete();
        }
        upload.Commit();
        return counter.Written;
    }

    /// <summary>The points this copy holds, oldest first, each from its authenticated index header.</summary>
    public IReadOnlyList<CopyIndexHeader> List() =>
        _store.ListIndexes().Select(i => ReadHeader(i.Name)).OrderBy(h => h.CreatedAt).ThenBy(h => h.Sequence).ToList();

    public bool Has(string pointId) => _store.ListIndexes().Any(i => i.Name == pointId);

    public CopyIndexHeader ReadHeader(string pointId)
    {
        using var reader = OpenIndex(pointId, out var header);
        return header;
    }

    private SealedReader OpenIndex(string pointId, out CopyIndexHeader header)
    {
        var where = $"{_store.Location}: index of {pointId}";
        var reader = new SealedReader(_store.OpenIndex(pointId), _key.DataKey, pointId, where);
        try
        {
            Span<byte> length = stackalloc byte[4];
            reader.ReadFully(length);
            var n = BinaryPrimitives.ReadInt32BigEndian(length);
            if (n is <= 0 or > MaxHeaderBytes)
            {
                throw new RepositoryCorruptException($"{where}: header of {n} bytes; damaged");
            }
            var json = new byte[n];
            reader.ReadFully(json);
            header = Json.Parse<CopyIndexHeader>(where, json);
            header.Check(where, pointId);
            return reader;
        }
        catch
        {
            reader.Dispose();
            throw;
        }
    }

    /// <summary>
    /// Writes one file of a copied point to a new path (an existing one is refused): chunks fetched in batches,
    /// each authenticated and checked against its id, zero chunks left as holes, the length and the file digest
    /// checked at the end; on any failure the partial file is removed, so damage is never restored silently.
    /// </summary>
    public void RestoreFile(string pointId, string fileKey, string targetPath, IProgress<long>? progress, CancellationToken ct)
    {
        targetPath = Path.GetFullPath(targetPath);
        if (File.Exists(targetPath) || Directory.Exists(targetPath))
        {
            throw new RepositoryException($"{targetPath} already exists; refusing to overwrite it (choose a new path or remove it first)");
        }
        using var reader = OpenIndex(pointId, out var header);
        var file = header.Files.FirstOrDefault(f => f.FileKey == fileKey)
            ?? throw new RestorePointNotFoundException($"the copy of {pointId} in {_store.Location} has no file '{fileKey}' (it has: {string.Join(", ", header.Files.Select(f => f.FileKey))})");
        SkipTo(reader, header, file);
        var where = $"{_store.Location}: '{fileKey}' of {pointId}";
        var created = false;
        try
        {
            using var output = File.OpenHandle(targetPath, FileMode.CreateNew, FileAccess.Write, FileShare.None);
            created = true;
            using var digest = _sealer.NewFileDigest(file.FileSize);
            var plain = new byte[file.BlockSize];
            foreach (var (first, batch) in ChunkBatches(reader, file, digest, ct))
            {
                var count = batch.Length;
                var wanted = batch.Where(b => !b.IsZero).Distinct().ToList();
                var frames = wanted.Count == 0 ? [] : _store.GetChunks(wanted);
                var byId = new Dictionary<ChunkId, byte[]>();
                for (var j = 0; j < wanted.Count; j++)
                {
                    byId[wanted[j]] = frames[j];
                }
                for (var i = 0; i < count; i++)
                {
                    var index = first + i;
                    var offset = index * file.BlockSize;
                    var expected = (int)Math.Min(file.BlockSize, file.FileSize - offset);
                    if (batch[i].IsZero)
                    {
                        continue; // a hole
                    }
                    var n = _sealer.Open(batch[i], byId[batch[i]], plain, $"{where}, chunk {index} ({batch[i]})");
                    if (n != expected)
                    {
                        throw new RepositoryCorruptException($"{where}, chunk {index}: {n} bytes, expected {expected}");
                    }
                    RandomAccess.Write(output, plain.AsSpan(0, n), offset);
                }
                progress?.Report(Math.Min(file.FileSize, (first + count) * file.BlockSize));
            }
            if (digest.Finish() != file.Digest)
            {
                throw new RepositoryCorruptException($"{where}: its chunk list does not give the recorded digest {file.Digest}; the index is damaged");
            }
            RandomAccess.SetLength(output, file.FileSize);
            RandomAccess.FlushToDisk(output);
        }
        catch
        {
            if (created)
            {
                File.Delete(targetPath);
            }
            throw;
        }
    }

    /// <summary>
    /// True when the file (or block device) at <paramref name="path"/> holds exactly <paramref name="fileKey"/> of the
    /// copied point: its length, and its blocks named as a copy names them (an all-zero block as the zero id) giving the
    /// file's recorded chunk-list digest. Reads the file once, fetches nothing from the store.
    /// </summary>
    public bool Matches(string pointId, string fileKey, string path, CancellationToken ct)
    {
        var file = ReadHeader(pointId).Files.FirstOrDefault(f => f.FileKey == fileKey)
            ?? throw new RestorePointNotFoundException($"the copy of {pointId} in {_store.Location} has no file '{fileKey}'");
        using var input = File.OpenHandle(path, FileMode.Open, FileAccess.Read, FileShare.ReadWrite);
        if (SourceLength.Of(input, path) != file.FileSize)
        {
            return false;
        }
        using var digest = _sealer.NewFileDigest(file.FileSize);
        var block = new byte[file.BlockSize];
        var id = new byte[ChunkId.Length];
        for (long offset = 0; offset < file.FileSize; offset += file.BlockSize)
        {
            ct.ThrowIfCancellationRequested();
            var n = (int)Math.Min(file.BlockSize, file.FileSize - offset);
            RandomAccess.Read(input, block.AsSpan(0, n), offset);
            var chunk = block.AsSpan(0, n).ContainsAnyExcept((byte)0) ? _sealer.Id(block.AsSpan(0, n)) : ChunkId.Zero;
            chunk.Write(id);
            digest.Add(id);
        }
        return digest.Finish() == file.Digest;
    }

    /// <summary>
    /// A file's chunk ids from its index, in batches of at most 8 MiB of chunks (one GetChunks request each), each
    /// batch added to <paramref name="digest"/> as it is read.
    /// </summary>
    private static IEnumerable<(long First, ChunkId[] Ids)> ChunkBatches(SealedReader reader, CopyIndexFile file, ChunkSealer.FileDigest digest, CancellationToken ct)
    {
        var batchSize = Math.Clamp((8 << 20) / file.BlockSize, 1, MaxBatch);
        var bytes = new byte[batchSize * ChunkId.Length];
        for (long first = 0; first < file.ChunkCount; first += batchSize)
        {
            ct.ThrowIfCancellationRequested();
            var count = (int)Math.Min(batchSize, file.ChunkCount - first);
            reader.ReadFully(bytes.AsSpan(0, count * ChunkId.Length));
            digest.Add(bytes.AsSpan(0, count * ChunkId.Length));
            var ids = new ChunkId[count];
            for (var i = 0; i < count; i++)
            {
                ids[i] = ChunkId.Read(bytes.AsSpan(i * ChunkId.Length));
            }
            yield return (first, ids);
        }
    }

    private static void SkipTo(SealedReader reader, CopyIndexHeader header, CopyIndexFile file)
    {
        var skip = new byte[1 << 16];
        foreach (var f in header.Files)
        {
            if (ReferenceEquals(f, file))
            {
                return;
            }
            for (var left = f.ChunkCount * ChunkId.Length; left > 0; left -= skip.Length)
            {
                reader.ReadFully(skip.AsSpan(0, (int)Math.Min(skip.Length, left)));
            }
        }
    }

    /// <summary>
    /// Checks every index (authenticated, complete, its chunk list giving each file's digest) and that every chunk it
    /// names is stored; with <paramref name="readData"/> also fetches and opens every chunk (authenticated, hashing
    /// to its id, of the right length). Changes nothing.
    /// </summary>
    public CopyVerifyReport Verify(bool readData, CancellationToken ct)
    {
        var problems = new List<string>();
        var read = new HashSet<ChunkId>();
        long checkedChunks = 0;
        var indexes = _store.ListIndexes();
        var plain = new byte[ChunkSealer.MaxPlaintext];
        foreach (var (name, _) in indexes)
        {
            try
            {
                using var reader = OpenIndex(name, out var header);
                foreach (var file in header.Files)
                {
                    using var digest = _sealer.NewFileDigest(file.FileSize);
                    foreach (var (first, ids) in ChunkBatches(reader, file, digest, ct))
                    {
                        var batch = ids.Select((id, i) => (Index: first + i, Id: id)).Where(b => !b.Id.IsZero).ToList();
                        checkedChunks += batch.Count;
                        var missing = _store.Missing(batch.Select(b => b.Id).Distinct().ToList()).ToHashSet();
                        foreach (var b in batch.Where(b => missing.Contains(b.Id)))
                        {
                            problems.Add($"point {name}, file '{file.FileKey}', chunk {b.Index} ({b.Id}): missing from the store");
                        }
                        if (!readData)
                        {
                            continue;
                        }
                        var toRead = batch.Where(b => !missing.Contains(b.Id) && read.Add(b.Id)).ToList();
                        var frames = toRead.Count == 0 ? [] : _store.GetChunks(toRead.Select(b => b.Id).ToList());
                        for (var j = 0; j < toRead.Count; j++)
                        {
                            var expected = (int)Math.Min(file.BlockSize, file.FileSize - (toRead[j].Index * file.BlockSize));
                            try
                            {
                                var n = _sealer.Open(toRead[j].Id, frames[j], plain, $"point {name}, file '{file.FileKey}', chunk {toRead[j].Index} ({toRead[j].Id})");
                                if (n != expected)
                                {
                                    problems.Add($"point {name}, file '{file.FileKey}', chunk {toRead[j].Index}: {n} bytes, expected {expected}");
                                }
                            }
                            catch (RepositoryCorruptException e)
                            {
                                problems.Add(e.Message);
                            }
                        }
                    }
                    if (digest.Finish() != file.Digest)
                    {
                        problems.Add($"point {name}, file '{file.FileKey}': the chunk list does not give the recorded digest; the index is damaged");
                    }
                }
            }
            catch (RepositoryCorruptException e)
            {
                problems.Add(e.Message);
            }
        }
        return new CopyVerifyReport(problems.Count == 0, problems, indexes.Count, checkedChunks, read.Count);
    }

    /// <summary>Removes a point's index (its chunks stay until a <see cref="Prune"/> collects them). Refused by an append-only store.</summary>
    public void Delete(string pointId) => _store.DeleteIndex(pointId);

    /// <summary>
    /// Removes the indexes <paramref name="remove"/>, then every chunk no remaining index names. Crash-safe by order:
    /// the repository is first held exclusively (no copy can find a chunk present while it may go; a killed prune's
    /// lock goes with its process), each index is deleted durably before any chunk, and the referenced set is built
    /// from every index left, so an interrupted prune only leaves unreferenced chunks for the next one. An index that
    /// cannot be read stops the collection before any chunk is deleted (its chunks cannot be told apart). The
    /// referenced ids go through 16 temporary files by their first hex digit, so memory holds a sixteenth of them.
    /// With <paramref name="dryRun"/> nothing is taken or changed, and the counts say what would go.
    /// </summary>
    public CopyPruneReport Prune(IReadOnlyCollection<string> remove, bool dryRun, CancellationToken ct)
    {
        var collection = _store as IChunkCollector
            ?? throw new ChunkStoreRefusedException($"{_store.Location}: this store cannot collect chunks");
        if (!dryRun && _store.AppendOnly)
        {
            throw new ChunkStoreRefusedException($"{_store.Location} is served append-only: prune refused, nothing was removed (prune on the repository's host, or through a key whose forced `backupd serve` has no --append-only)");
        }
        var leftovers = dryRun ? 0 : collection.BeginCollection();
        var present = _store.ListIndexes().Select(i => i.Name).ToHashSet(StringComparer.Ordinal);
        var removed = remove.Where(present.Contains).Distinct(StringComparer.Ordinal).ToList();
        if (!dryRun)
        {
            foreach (var name in removed)
            {
                ct.ThrowIfCancellationRequested();
                _store.DeleteIndex(name);
            }
        }
        const int Buckets = 16;
        var buckets = new FileStream[Buckets];
        try
        {
            for (var b = 0; b < Buckets; b++)
            {
                buckets[b] = new FileStream(Path.Combine(Path.GetTempPath(), $"backupd-prune-{Guid.NewGuid():N}.ids"), FileMode.CreateNew, FileAccess.ReadWrite, FileShare.None, 1 << 16, FileOptions.DeleteOnClose);
            }
            var id = new byte[ChunkId.Length];
            foreach (var name in present.Where(n => !removed.Contains(n)).Order(StringComparer.Ordinal))
            {
                try
                {
                    using var reader = OpenIndex(name, out var header);
                    foreach (var file in header.Files)
                    {
                        using var digest = _sealer.NewFileDigest(file.FileSize);
                        foreach (var (_, ids) in ChunkBatches(reader, file, digest, ct))
                        {
                            foreach (var chunk in ids.Where(c => !c.IsZero))
                            {
                                chunk.Write(id);
                                buckets[id[0] >> 4].Write(id);
                            }
                        }
                        if (digest.Finish() != file.Digest)
                        {
                            throw new RepositoryCorruptException($"the chunk list of '{file.FileKey}' does not give its recorded digest");
                        }
                    }
                }
                catch (RepositoryCorruptException e)
                {
                    throw new RepositoryCorruptException($"{_store.Location}: the index of {name} is damaged ({e.Message}); no chunk was collected, since the chunks it names cannot be told apart (" +
                        (removed.Count > 0 && !dryRun ? $"the {removed.Count} index(es) pruned are gone; " : "") + "run `backupd verify --target` and remove or repair that point first)", e);
                }
            }
            long chunksRemoved = 0, freed = 0, kept = 0;
            for (var b = 0; b < Buckets; b++)
            {
                var referenced = new HashSet<ChunkId>();
                buckets[b].Position = 0;
                while (buckets[b].ReadAtLeast(id, id.Length, throwOnEndOfStream: false) == id.Length)
                {
                    referenced.Add(ChunkId.Read(id));
                }
                for (var prefix = b * 16; prefix < (b + 1) * 16; prefix++)
                {
                    ct.ThrowIfCancellationRequested();
                    var stored = collection.ListChunks((byte)prefix);
                    var unreferenced = stored.Where(c => !referenced.Contains(c)).ToList();
                    kept += stored.Count - unreferenced.Count;
                    chunksRemoved += unreferenced.Count;
                    if (!dryRun && unreferenced.Count > 0)
                    {
                        freed += collection.DeleteChunks(unreferenced);
                    }
                }
            }
            if (!dryRun && chunksRemoved > 0)
            {
                freed += collection.Compact();
            }
            return new CopyPruneReport(removed, chunksRemoved, freed, kept, leftovers, dryRun);
        }
        finally
        {
            foreach (var bucket in buckets)
            {
                bucket?.Dispose();
            }
        }
    }

    public void Dispose()
    {
        _sealer.Dispose();
        _store.Dispose();
    }

    /// <summary>Counts the sealed bytes going to the store.</summary>
    private sealed class UploadStream(IIndexUpload upload) : Stream
    {
        public long Written { get; private set; }

        public override void Write(ReadOnlySpan<byte> buffer)
        {
            upload.Write(buffer);
            Written += buffer.Length;
        }

        public override void Write(byte[] buffer, int offset, int count) => Write(buffer.AsSpan(offset, count));
        public override bool CanRead => false;
        public override bool CanSeek => false;
        public override bool CanWrite => true;
        public override long Length => Written;
        public override long Position { get => Written; set => throw new NotSupportedException(); }
        public override void Flush() { }
        public override int Read(byte[] buffer, int offset, int count) => throw new NotSupportedException();
        public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();
        public override void SetLength(long value) => throw new NotSupportedException();
    }

    private sealed class SyncProgress(Action<long> report) : IProgress<long>
    {
        public void Report(long value) => report(value);
    }
}
