using System.Diagnostics;
using Backupd.Storage.ChangedBlocks;
using Backupd.Storage.Delta;

namespace Backupd.Storage.Repository;

/// <summary>
/// One backup of a group, producing one restore point. Holds the group's writer lock until disposed.
/// Dispose without <see cref="Commit"/> rolls back every file it touched. Files of the previous point that
/// are not added again are carried over unchanged into the new point.
/// </summary>
public sealed class BackupSession : IDisposable
{
    private readonly BackupRepository _repo;
    private readonly GroupLock _lock;
    private readonly string _groupId;
    private readonly string _groupName;
    private readonly long _sequence;
    private readonly PointDocument? _previous;
    private readonly DateTimeOffset _createdAt = DateTimeOffset.UtcNow;
    private readonly Dictionary<string, PointFileDocument> _added = new(StringComparer.Ordinal);
    private readonly Dictionary<string, string> _metadata = new(StringComparer.Ordinal);
    private readonly Dictionary<string, ScrubReport> _scrubs = new(StringComparer.Ordinal);
    private readonly JournalDocument _journal;
    private bool _journalWritten;
    private bool _broken;
    private bool _committed;
    private bool _crashed;
    private bool _disposed;

    internal BackupSession(BackupRepository repo, GroupLock groupLock, string groupId, string groupName, string pointId, long sequence, PointDocument? previous)
    {
        _repo = repo;
        _lock = groupLock;
        _groupId = groupId;
        _groupName = groupName;
        PointId = pointId;
        _sequence = sequence;
        _previous = previous;
        _journal = new JournalDocument(JournalDocument.Backup, pointId, [], []);
    }

    /// <summary>The id the restore point will have once committed.</summary>
    public string PointId { get; }

    private RepositoryLayout L => _repo.Layout;

    /// <summary>
    /// Backs up one file: reads it once (holes skipped via SEEK_DATA/SEEK_HOLE), compares each block with the
    /// stored signature, and writes only changed blocks into the mirror, their old bytes into an undo record
    /// first. <paramref name="progress"/> receives the byte offset reached. <paramref name="readThrottle"/>, if given, is
    /// awaited with the size of each read before it happens (bandwidth limits; the read-ahead waits, not the hashing).
    /// <paramref name="changed"/>, if given, is a changed-block read plan: only its blocks are read (the others keep the
    /// mirror's bytes and the previous signature's tags), or, in safety-net mode, everything is read and blocks the plan
    /// called clean that differ are counted. A plan that does not fit the repository's latest version is not used: the
    /// file is read fully and <see cref="FileVersionInfo.FullReadReason"/> says why.
    /// </summary>
    public async Task<FileVersionInfo> AddFileAsync(string fileKey, string sourcePath, SourceFileInfo info, IProgress<long>? progress, CancellationToken ct,
        Func<long, CancellationToken, ValueTask>? readThrottle = null, ChangedBlockRead? changed = null)
    {
        EnsureOpen();
        Names.Validate(NameKind.FileKey, fileKey, nameof(fileKey));
        ArgumentNullException.ThrowIfNull(info);
        if (_added.ContainsKey(fileKey))
        {
            throw new ArgumentException($"file '{fileKey}' was already added to this backup", nameof(fileKey));
        }
        var watch = Stopwatch.StartNew();
        using var source = File.OpenHandle(sourcePath, FileMode.Open, FileAccess.Read, FileShare.ReadWrite);
        var length = SourceLength.Of(source, sourcePath);
        var previous = BackupRepository.VersionChain(_repo.LoadPoints(_groupId), fileKey).LastOrDefault();
        var hadMirror = previous is not null;
        var fileDir = L.File(_groupId, fileKey);
        var mirrorPath = L.Mirror(_groupId, fileKey);
        if (hadMirror && !_repo.Beneath.FileExists(mirrorPath))
        {
            throw new RepositoryCorruptException($"{mirrorPath} is missing although restore points reference version {previous!.VersionId} of '{fileKey}'");
        }
        if (!hadMirror)
        {
            _repo.Beneath.DeleteTree(fileDir); // leftovers of a never-committed backup
        }
        var blockSize = previous?.BlockSize ?? _repo.BlockSize;
        BlockHasher.ValidateBlockSize(blockSize);

        _broken = true; // until this file is complete
        try
        {
            _journal.Files.Add(new JournalFile(fileKey, hadMirror, previous?.VersionId));
            WriteJournal();
            Fault("journal-written");
            var mode = ChangedBlockMode.Decide(fileKey, changed, previous, length, blockSize);
            var result = await WriteVersionAsync(fileKey, sourcePath, info, source, length, previous, blockSize, progress, watch, readThrottle, mode, ct);
            _added[fileKey] = result;
            _broken = false;
            return result.ToInfo() with { Scrub = _scrubs.GetValueOrDefault(fileKey) };
        }
        catch (SimulatedCrashException)
        {
            _crashed = true;
            throw;
        }
    }

    private async Task<PointFileDocument> WriteVersionAsync(
        string fileKey, string sourcePath, SourceFileInfo info, Microsoft.Win32.SafeHandles.SafeFileHandle source, long length,
        PointFileDocument? previous, int blockSize, IProgress<long>? progress, Stopwatch watch,
        Func<long, CancellationToken, ValueTask>? readThrottle, ChangedBlockMode mode, CancellationToken ct)
    {
        var hasher = _repo.Hasher;
        var fileDir = L.File(_groupId, fileKey);
        _repo.Beneath.CreateDirectory(fileDir);
        Signature? oldSig = null;
        if (previous is not null)
        {
            using var sigStream = _repo.Beneath.OpenRead(L.Signature(_groupId, fileKey), 1 << 16);
            oldSig = SignatureFormat.Read(sigStream, hasher.KeyId);
        }

        using var mirror = _repo.Beneath.OpenFile(L.Mirror(_groupId, fileKey), previous is null ? FileMode.CreateNew : FileMode.Open, FileAccess.ReadWrite);
        var mirrorFile = new HandleFile(mirror);
        if (oldSig is not null && oldSig.Length != mirrorFile.Length)
        {
            throw new RepositoryCorruptException($"{L.Mirror(_groupId, fileKey)} has {mirrorFile.Length} bytes but its signature describes {oldSig.Length}");
        }
        FileStream? undoStream = null;
        UndoRecordWriter? undo = null;
        InPlacePatcher? patcher = null;
        try
        {
            if (previous is not null)
            {
                _repo.Beneath.CreateDirectory(L.UndoDirectory(_groupId, fileKey));
                undoStream = _repo.Beneath.OpenStream(L.Undo(_groupId, fileKey, previous.VersionId), FileMode.CreateNew, FileAccess.ReadWrite);
                var stream = undoStream;
                undo = new UndoRecordWriter(undoStream, oldSig!.Length, () => stream.Flush(flushToDisk: true));
                undo.Sync();
                _repo.Beneath.FsyncDirectory(L.UndoDirectory(_groupId, fileKey));
                Fault("undo-created");
                patcher = new InPlacePatcher(mirrorFile, undo, _repo.BatchBytes, () => Fault("undo-synced"));
            }
            else
            {
                _repo.Beneath.FsyncDirectory(fileDir);
            }
            var damaged = oldSig is null ? [] : DamageList.Read(_repo.Beneath, L, _groupId, fileKey, blockSize, oldSig.BlockCount);
            var scrub = oldSig is null ? null : new MirrorScrub(mirrorFile, oldSig, hasher, _sequence, _repo.ScrubCycle, damaged, SourceScan.MaxChunkBytes(blockSize));
            var unchangedBlocks = new bool[SourceScan.MaxChunkBytes(blockSize) / blockSize];
            var carry = mode.CarryPredicate(oldSig, damaged);

            var diff = new BlockDiff(blockSize, length, hasher, oldSig, patcher ?? (IBlockSink)new NewMirrorSink(mirrorFile));
            long cleanButChanged = 0;
            var bytesRead = await SourceScan.RunAsync(source, length, blockSize, hasher, chunk =>
            {
                var first = chunk.Offset / blockSize;
                if (carry is not null)
                {
                    // Not read: the mirror keeps its bytes, the new signature the old tag.
                    for (var i = 0; i < chunk.Blocks; i++)
                    {
                        if (carry(first + i))
                        {
                            chunk.Zero[i] = oldSig!.IsZero(first + i);
                            chunk.Tags[i] = oldSig.Tag(first + i);
                        }
                    }
                }
                diff.Apply(chunk, unchangedBlocks);
                if (mode.SafetyNet)
                {
                    for (var i = 0; i < chunk.Blocks; i++)
                    {
                        if (!unchangedBlocks[i] && mode.PlanCallsClean(first + i, oldSig!))
                        {
                            cleanButChanged++;
                        }
                    }
                }
                if (carry is not null)
                {
                    // The scrub heals from source bytes, which a carried block does not have; damage-listed blocks are always read.
                    for (var i = 0; i < chunk.Blocks; i++)
                    {
                        unchangedBlocks[i] &= !carry(first + i);
                    }
                }
                scrub?.Check(chunk, unchangedBlocks.AsSpan(0, chunk.Blocks));
                progress?.Report(chunk.Offset + chunk.Length);
            }, ct, readThrottle, carry);

            if (patcher is not null)
            {
                patcher.Complete(length);
                undo!.Complete();
            }
            else
            {
                RandomAccess.SetLength(mirror, length);
            }
            mirrorFile.Flush(); // healed blocks too: durable before the point that relies on them is published
            Fault("mirror-written");
            if (scrub is not null)
            {
                _scrubs[fileKey] = ScrubReportFor(fileKey, scrub, blockSize);
            }

            var signature = diff.Build();
            var pendingSig = L.PendingSignature(_groupId, fileKey, PointId);
            long sigBytes;
            using (var sigOut = _repo.Beneath.OpenStream(pendingSig, FileMode.Create, FileAccess.Write, 1 << 16))
            {
                SignatureFormat.Write(signature, sigOut);
                sigOut.Flush(flushToDisk: true);
                sigBytes = sigOut.Length;
            }
            _repo.Beneath.FsyncDirectory(fileDir);
            Fault("signature-written");

            var undoBytes = undo?.BytesWritten ?? 0;
            var undoUncompressed = undo?.UncompressedBytes ?? 0;
            long changed = diff.BlocksChanged, mirrorBytes = diff.BytesWritten;
            var unchanged = oldSig is not null && changed == 0 && length == oldSig.Length;
            undoStream?.Dispose();
            undoStream = null;
            if (unchanged)
            {
                // Same content as the previous version: keep referring to it, keep no empty undo record.
                _repo.Beneath.Delete(L.Undo(_groupId, fileKey, previous!.VersionId));
                _repo.Beneath.Delete(pendingSig);
                mirrorBytes = undoBytes = undoUncompressed = sigBytes = 0;
            }
            return new PointFileDocument(
                fileKey,
                unchanged ? previous!.VersionId : PointId,
                unchanged ? previous!.VersionSequence : _sequence,
                info.SourcePath.Length > 0 ? info.SourcePath : sourcePath,
                info.Format, info.BackingFile, info.VirtualSize, length, signature.Digest(), blockSize,
                bytesRead, mirrorBytes + undoBytes + sigBytes, changed, watch.Elapsed.TotalSeconds)
            {
                MirrorBytesWritten = mirrorBytes,
                UndoBytesWritten = undoBytes,
                UndoBytesUncompressed = undoUncompressed > 0 ? undoUncompressed : null,
                ReadMode = mode.Offered ? mode.ReadMode : null,
                FullReadReason = mode.FullReadReason,
                CleanButChanged = mode.SafetyNet ? cleanButChanged : null,
            };
        }
        finally
        {
            undoStream?.Dispose();
        }
    }

    private ScrubReport ScrubReportFor(string fileKey, MirrorScrub scrub, int blockSize)
    {
        var damaged = scrub.Healed.Concat(scrub.Superseded).ToList();
        var points = damaged.Count == 0 ? [] : _repo.LoadPoints(_groupId);
        var reach = DamageReach.PointsReadingMirror(_repo.Beneath, L, _groupId, fileKey, points, BackupRepository.VersionChain(points, fileKey), damaged, blockSize);
        return new ScrubReport(scrub.BlocksChecked, scrub.Healed, scrub.Superseded, reach);
    }

    /// <summary>Stores a small named document with the point (e.g. "domain.xml").</summary>
    public void AttachMetadata(string name, string content)
    {
        EnsureOpen();
        Names.Validate(NameKind.MetadataName, name, nameof(name));
        ArgumentNullException.ThrowIfNull(content);
        _metadata[name] = content;
    }

    /// <summary>Publishes the restore point; it is durable when this returns. Releases the group lock.</summary>
    public RestorePointInfo Commit()
    {
        EnsureOpen();
        if (_broken)
        {
            throw new InvalidOperationException("a file of this backup failed; dispose the session to roll it back");
        }
        var files = _added.Values.ToList();
        if (_previous is not null)
        {
            files.AddRange(_previous.Files.Where(f => !_added.ContainsKey(f.FileKey))
                .Select(f => f with
                {
                    BytesRead = 0, BytesWritten = 0, BlocksChanged = 0, ElapsedSeconds = 0, MirrorBytesWritten = 0, UndoBytesWritten = 0, UndoBytesUncompressed = null,
                    ReadMode = null, FullReadReason = null, CleanButChanged = null,
                }));
        }
        files.Sort((a, b) => string.CompareOrdinal(a.FileKey, b.FileKey));
        var doc = new PointDocument(1, PointId, _groupId, _groupName, _sequence, _createdAt, files, new Dictionary<string, string>(_metadata));
        try
        {
            Fault("before-manifest");
            _repo.Documents.Write(L.Point(_groupId, PointId), doc);
            _committed = true; // the restore point exists from here on
            Fault("manifest-written");
            foreach (var key in _scrubs.Keys)
            {
                DamageList.Clear(_repo.Beneath, L, _groupId, key); // every listed block was re-checked; a crash before this only repeats the checks
            }
            if (_journalWritten)
            {
                _repo.Recover(_groupId); // rolls forward: publishes the new signatures, removes the journal
            }
        }
        catch (SimulatedCrashException)
        {
            _crashed = true;
            throw;
        }
        Dispose();
        var info = doc.ToInfo();
        return info with { Files = [.. info.Files.Select(f => _scrubs.TryGetValue(f.FileKey, out var s) && _added.ContainsKey(f.FileKey) ? f with { Scrub = s } : f)] };
    }

    private void WriteJournal()
    {
        _repo.Documents.Write(L.Journal(_groupId), _journal);
        _journalWritten = true;
    }

    private void Fault(string phase)
    {
        try
        {
            _repo.Fault(phase);
        }
        catch (SimulatedCrashException)
        {
            _crashed = true;
            throw;
        }
    }

    private void EnsureOpen()
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        if (_committed)
        {
            throw new InvalidOperationException("the session is already committed");
        }
        if (_crashed)
        {
            throw new InvalidOperationException("session crashed (test)");
        }
    }

    public void Dispose()
    {
        if (_disposed)
        {
            return;
        }
        _disposed = true;
        try
        {
            // A simulated crash leaves everything as a dead process would; the next Open recovers it.
            if (!_crashed && _journalWritten && _repo.Beneath.FileExists(L.Journal(_groupId)))
            {
                _repo.Recover(_groupId);
            }
        }
        finally
        {
            _lock.Dispose();
        }
    }
}

/// <summary>Thrown by test fault hooks to simulate a crash: the session then leaves its files as a killed process would.</summary>
internal sealed class SimulatedCrashException(string phase) : Exception($"simulated crash at {phase}")
{
}
