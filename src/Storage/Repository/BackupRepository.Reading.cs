using Backupd.Storage.Delta;

namespace Backupd.Storage.Repository;

public sealed partial class BackupRepository
{
    private const int ReadChunkBytes = 8 << 20;

    /// <summary>
    /// Writes one file of a restore point to a new path: streamed, holes kept as holes, and checked against the
    /// recorded digest before returning (on mismatch the target is removed). Refuses an existing target.
    /// Bytes are hashed as they are read and written from that buffer; the mirror's own ranges are cloned instead
    /// where the file system shares extents (<see cref="RestoreTarget"/>).
    /// Takes the group's lock shared: refused (busy) while a backup or deletion of the group runs.
    /// </summary>
    public async Task<RestoreReport> RestoreFileAsync(string pointId, string fileKey, string targetPath, IProgress<long>? progress, CancellationToken ct)
    {
        var (point, file) = FindFile(pointId, fileKey);
        targetPath = Path.GetFullPath(targetPath);
        if (File.Exists(targetPath) || System.IO.Directory.Exists(targetPath))
        {
            throw new RepositoryException($"{targetPath} already exists; refusing to overwrite it (choose a new path or remove it first)");
        }
        using var groupLock = GroupLock.Shared(Beneath, _layout.Group(point.GroupId), "restore");
        var chain = VersionChain(LoadPoints(point.GroupId), fileKey);
        var undoPaths = UndoPathsFor(point.GroupId, fileKey, chain, file.VersionId);
        return await Task.Run(() => Restore(point, file, undoPaths, targetPath, progress, ct), ct);
    }

    /// <summary>False makes restores write every byte from their buffer, as where the file system cannot clone.</summary>
    internal bool CloneFromMirror { get; set; } = true;

    private (PointDocument Point, PointFileDocument File) FindFile(string pointId, string fileKey)
    {
        var point = FindPointDocument(pointId) ?? throw new RestorePointNotFoundException($"restore point {pointId} does not exist in {Directory}");
        var file = point.Files.FirstOrDefault(f => f.FileKey == fileKey)
            ?? throw new RestorePointNotFoundException($"restore point {pointId} has no file '{fileKey}' (it has: {string.Join(", ", point.Files.Select(f => f.FileKey))})");
        return (point, file);
    }

    /// <summary>
    /// True when the file or block device at <paramref name="path"/> holds exactly the content of
    /// <paramref name="fileKey"/> at <paramref name="pointId"/> (same length, same digest). Reads it once, front
    /// to back; used after a restored image was copied onto a device, where no digest-checked restore can write.
    /// </summary>
    public async Task<bool> MatchesAsync(string pointId, string fileKey, string path, IProgress<long>? progress, CancellationToken ct)
    {
        var (_, file) = FindFile(pointId, fileKey);
        using var source = File.OpenHandle(path, FileMode.Open, FileAccess.Read, FileShare.ReadWrite);
        var length = SourceLength.Of(source, path);
        if (length != file.FileSize)
        {
            return false;
        }
        var blockSize = file.BlockSize;
        var builder = new SignatureBuilder(blockSize, Hasher.KeyId, expectedBlocks: Signature.BlockCountFor(length, blockSize));
        await SourceScan.RunAsync(source, length, blockSize, Hasher, chunk =>
        {
            for (var i = 0; i < chunk.Blocks; i++)
            {
                builder.Add(chunk.Zero[i], chunk.Tags[i], 0, (int)Math.Min(blockSize, length - chunk.Offset - ((long)i * blockSize)));
            }
            progress?.Report(chunk.Offset + chunk.Length);
        }, ct);
        return builder.Build().Digest() == file.Digest;
    }

    private RestoreReport Restore(PointDocument point, PointFileDocument file, List<string> undoPaths, string targetPath, IProgress<long>? progress, CancellationToken ct)
    {
        var created = false;
        try
        {
            using var reader = new VersionReader(Beneath, _layout.Mirror(point.GroupId, file.FileKey), undoPaths);
            if (reader.Length != file.FileSize)
            {
                throw new RepositoryCorruptException($"'{file.FileKey}' at {point.PointId}: reconstructed length {reader.Length}, recorded {file.FileSize}");
            }
            using var output = File.OpenHandle(targetPath, FileMode.CreateNew, FileAccess.Write, FileShare.None);
            created = true;
            var sink = new RestoreTarget(output, reader.Mirror, CloneFromMirror);
            var signature = ReadWindows(reader, file.BlockSize, sink.Write, progress, perBlock: null, trackOverlay: true, ct);
            var digest = signature.Digest();
            if (digest != file.Digest)
            {
                throw new RepositoryCorruptException($"'{file.FileKey}' at {point.PointId}: restored content has digest {digest}, recorded {file.Digest}; the repository is damaged (run verify)");
            }
            RandomAccess.SetLength(output, reader.Length);
            RandomAccess.FlushToDisk(output);
            return sink.Report;
        }
        catch (CorruptDataException e)
        {
            DeletePartial(targetPath, created);
            throw new RepositoryCorruptException($"'{file.FileKey}' at {point.PointId}: {e.Message}", e);
        }
        catch
        {
            DeletePartial(targetPath, created);
            throw;
        }
    }

    private static void DeletePartial(string path, bool created)
    {
        if (created && File.Exists(path))
        {
            File.Delete(path);
        }
    }

    /// <summary>Reads a whole version in chunks, hashing blocks on all cores; returns its signature.</summary>
    private Signature ReadVersion(VersionReader reader, int blockSize, ChunkAction? onChunk, IProgress<long>? progress, CancellationToken ct, Action<long, bool, UInt128>? perBlock = null) =>
        ReadWindows(reader, blockSize, onChunk is null ? null : (offset, data, zero, _, size) => onChunk(offset, data, zero, size), progress, perBlock, trackOverlay: false, ct);

    /// <summary>
    /// As <see cref="ReadVersion"/>; with <paramref name="trackOverlay"/> each window also says which blocks an undo record set.
    /// Two window buffers: while <paramref name="onChunk"/> handles one window on a worker thread (a restore's write, which
    /// may wait for write-back), the next is read and hashed here, so reading and writing overlap as in cp. Windows reach
    /// <paramref name="onChunk"/> one at a time and in order. Memory: two windows (8 MiB each, or one block if larger).
    /// </summary>
    private Signature ReadWindows(VersionReader reader, int blockSize, WindowAction? onChunk, IProgress<long>? progress, Action<long, bool, UInt128>? perBlock, bool trackOverlay, CancellationToken ct)
    {
        var chunkBytes = Math.Max(ReadChunkBytes, blockSize);
        var maxBlocks = chunkBytes / blockSize;
        var windows = new[] { new Window(chunkBytes, maxBlocks), new Window(chunkBytes, maxBlocks) };
        var holes = new bool[maxBlocks];
        var tags = new UInt128[maxBlocks];
        var builder = new SignatureBuilder(blockSize, Hasher.KeyId, expectedBlocks: Signature.BlockCountFor(reader.Length, blockSize));
        var length = reader.Length;
        Task? handling = null; // onChunk of the previous window, still running
        try
        {
            var k = 0;
            for (long offset = 0; offset < length; offset += chunkBytes, k++)
            {
                ct.ThrowIfCancellationRequested();
                var w = windows[k % 2]; // the other buffer may still be in onChunk's hands
                var n = (int)Math.Min(chunkBytes, length - offset);
                reader.Read(offset, w.Data.AsSpan(0, n), holes, blockSize, trackOverlay ? w.Overlaid : null);
                BlockDiff.HashBlocks(w.Data, n, blockSize, Hasher, w.Zero, tags, holes);
                var blocks = (n + blockSize - 1) / blockSize;
                for (var i = 0; i < blocks; i++)
                {
                    builder.Add(w.Zero[i], tags[i], 0, Math.Min(blockSize, n - (i * blockSize)));
                    perBlock?.Invoke((offset / blockSize) + i, w.Zero[i], tags[i]);
                }
                handling?.GetAwaiter().GetResult(); // in order, and frees the buffer the next window reads into
                handling = null;
                if (onChunk is not null)
                {
                    var at = offset;
                    handling = Task.Run(() => onChunk(at, w.Data.AsSpan(0, n), w.Zero.AsSpan(0, blocks), w.Overlaid.AsSpan(0, blocks), blockSize), ct);
                }
                progress?.Report(offset + n);
            }
            handling?.GetAwaiter().GetResult();
            handling = null;
        }
        finally
        {
            // On failure the caller disposes what onChunk writes to: let the running window finish first.
            if (handling is not null)
            {
                try
                {
                    handling.Wait(CancellationToken.None);
                }
                catch (Exception)
                {
                    // the first failure is the one thrown
                }
            }
        }
        reader.Finish();
        return builder.Build();
    }

    /// <summary>One window's buffer and per-block flags (overlaid stays all false without trackOverlay: every block is the mirror's).</summary>
    private sealed class Window(int bytes, int blocks)
    {
        public byte[] Data { get; } = new byte[bytes];
        public bool[] Zero { get; } = new bool[blocks];
        public bool[] Overlaid { get; } = new bool[blocks];
    }

    internal delegate void ChunkAction(long offset, ReadOnlySpan<byte> data, ReadOnlySpan<bool> zero, int blockSize);

    internal delegate void WindowAction(long offset, ReadOnlySpan<byte> data, ReadOnlySpan<bool> zero, ReadOnlySpan<bool> overlaid, int blockSize);

    /// <summary>
    /// Recomputes the digest of every version (all groups, one group, or one point's versions): the mirror block
    /// by block against its stored signature (naming the first bad block), older versions by reconstruction
    /// through their undo records (naming the damaged record and range). Changes nothing.
    /// </summary>
    public async Task<VerifyReport> VerifyAsync(string? groupId, string? pointId, IProgress<long>? progress, CancellationToken ct)
    {
        PointDocument? onlyPoint = null;
        if (pointId is not null)
        {
            onlyPoint = FindPointDocument(pointId) ?? throw new RestorePointNotFoundException($"restore point {pointId} does not exist in {Directory}");
        }
        if (groupId is not null)
        {
            Names.Validate(NameKind.GroupId, groupId, nameof(groupId));
            if (!Beneath.DirectoryExists(_layout.Group(groupId)))
            {
                throw new RestorePointNotFoundException($"group {groupId} does not exist in {Directory}");
            }
        }
        var groups = onlyPoint is not null ? [onlyPoint.GroupId] : groupId is not null ? [groupId] : GroupIds().ToList();
        return await Task.Run(() =>
        {
            var problems = new List<string>();
            var versions = 0;
            long bytes = 0;
            long done = 0;
            var relay = progress is null ? null : new Progress<long>(p => progress.Report(done + p));
            foreach (var g in groups)
            {
                using var groupLock = GroupLock.Shared(Beneath, _layout.Group(g), "verify");
                if (Beneath.FileExists(_layout.Journal(g)))
                {
                    problems.Add($"group {g}: an interrupted update is pending (open the repository for writing to recover it)");
                }
                var before = problems.Count;
                var points = VerifyDocuments(g, problems);
                if (problems.Count > before)
                {
                    problems.Add($"group {g}: its data was not checked, because documents it depends on are refused");
                    continue;
                }
                var keys = (onlyPoint?.Files ?? points.SelectMany(p => p.Files)).Select(f => f.FileKey).Distinct().Order(StringComparer.Ordinal);
                foreach (var key in keys)
                {
                    var chain = VersionChain(points, key);
                    var wanted = onlyPoint is null ? chain : chain.Where(v => onlyPoint.Files.Any(f => f.FileKey == key && f.VersionId == v.VersionId)).ToList();
                    foreach (var version in wanted)
                    {
                        ct.ThrowIfCancellationRequested();
                        var problem = VerifyVersion(g, key, chain, version, relay, ct);
                        versions++;
                        bytes += version.FileSize;
                        done += version.FileSize;
                        if (problem is not null)
                        {
                            problems.Add(problem);
                        }
                    }
                }
            }
            return new VerifyReport(problems.Count == 0, problems) { VersionsChecked = versions, BytesChecked = bytes };
        }, ct);
    }

    /// <summary>Lists the bad mirror blocks for the next backup to re-check and heal (a hint: verify stays read-only for restore points).</summary>
    private string RecordDamage(string g, string key, PointFileDocument version, List<long> bad)
    {
        try
        {
            DamageList.Write(Beneath, _layout, g, key, version.VersionId, version.BlockSize, bad);
            return "recorded in damage.json: the next backup re-checks these blocks and rewrites them from the source where it still has that content";
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return $"could not record them for the next backup ({e.Message}); its rotating scrub still reaches them within a cycle";
        }
    }

    private string? VerifyVersion(string g, string key, List<PointFileDocument> chain, PointFileDocument version, IProgress<long>? progress, CancellationToken ct)
    {
        var where = $"group {g}, file '{key}', version {version.VersionId}";
        var isMirror = version.VersionId == chain[^1].VersionId;
        try
        {
            Signature? stored = null;
            if (isMirror)
            {
                using var sigStream = Beneath.OpenRead(_layout.Signature(g, key));
                stored = SignatureFormat.Read(sigStream, Hasher.KeyId);
            }
            using var reader = new VersionReader(Beneath, _layout.Mirror(g, key), UndoPathsFor(g, key, chain, version.VersionId));
            if (reader.Length != version.FileSize)
            {
                return $"{where}: length {reader.Length}, recorded {version.FileSize}";
            }
            var bad = new List<long>();
            var computed = ReadVersion(reader, version.BlockSize, null, progress, ct, (block, zero, tag) =>
            {
                if (stored is not null && bad.Count < DamageList.MaxBlocks && !stored.Matches(block, zero, tag, stored.BlockLength(block)))
                {
                    bad.Add(block);
                }
            });
            if (bad.Count > 0)
            {
                var firstBad = bad[0];
                return $"{where} (the mirror): block {firstBad} (bytes {firstBad * version.BlockSize} to {Math.Min((firstBad + 1) * version.BlockSize, version.FileSize) - 1}) does not match its signature" +
                    $"{(bad.Count > 1 ? $" ({bad.Count} bad blocks in all)" : "")}; {RecordDamage(g, key, version, bad)}";
            }
            var digest = computed.Digest();
            if (digest != version.Digest) return $"{where}: digest {digest}, recorded {version.Digest}";
            // The version itself is whole (a full read), but the dirty bitmap missed writes: incremental points before it may lack them.
            return version.CleanButChanged is > 0 and var missed
                ? $"{where}: its safety-net read found {missed} block(s) that changed although the dirty bitmap called them clean; " +
                  "the incremental restore points before it may lack those writes (changed-block tracking, docs/workflow.md)"
                : null;
        }
        catch (CorruptDataException e)
        {
            return $"{where}: {e.Message}";
        }
        catch (RepositoryCorruptException e)
        {
            return $"{where}: {e.Message}";
        }
        catch (IOException e)
        {
            return $"{where}: {e.Message}";
        }
    }
}
