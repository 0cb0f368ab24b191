using Backupd.Storage.Delta;

namespace Backupd.Storage.Repository;

public sealed partial class BackupRepository
{
    /// <summary>
    /// Finishes or reverses the update a group's journal describes. The caller holds the group's exclusive lock.
    /// The point manifest decides: present → the update committed, roll forward; absent → roll back.
    /// Every step is idempotent, so a crash during recovery is recovered by the next Open.
    /// </summary>
    internal void Recover(string groupId)
    {
        var journalPath = _layout.Journal(groupId);
        if (!Beneath.FileExists(journalPath))
        {
            return;
        }
        JournalDocument journal;
        try
        {
            journal = ReadJournal(groupId);
        }
        catch (RepositoryCorruptException e)
        {
            // Journals are published by rename, so a damaged one is not a crash artefact: stop, do not guess.
            throw new RepositoryCorruptException($"cannot recover group {groupId}: {e.Message}", e);
        }
        var committed = Beneath.FileExists(_layout.Point(groupId, journal.PointId));
        switch (journal.Operation)
        {
            case JournalDocument.Backup when committed:
                FinishBackup(groupId, journal);
                break;
            case JournalDocument.Backup:
                RollBackBackup(groupId, journal);
                break;
            case JournalDocument.Delete when committed:
                foreach (var m in journal.Merges.Where(m => m.MergeInto is not null))
                {
                    Beneath.Delete(_layout.MergedUndo(groupId, m.FileKey, m.MergeInto!));
                }
                break;
            case JournalDocument.Delete:
                FinishDelete(groupId, journal);
                break;
            default:
                throw new RepositoryCorruptException($"{journalPath}: unknown operation '{journal.Operation}'");
        }
        Beneath.Delete(journalPath);
    }

    private void FinishBackup(string groupId, JournalDocument journal)
    {
        foreach (var f in journal.Files)
        {
            var pending = _layout.PendingSignature(groupId, f.FileKey, journal.PointId);
            if (Beneath.FileExists(pending))
            {
                Beneath.Rename(pending, _layout.Signature(groupId, f.FileKey));
            }
        }
    }

    private void RollBackBackup(string groupId, JournalDocument journal)
    {
        for (var i = journal.Files.Count - 1; i >= 0; i--)
        {
            var f = journal.Files[i];
            var fileDir = _layout.File(groupId, f.FileKey);
            if (!f.HadMirror)
            {
                // The whole directory belongs to the aborted backup.
                Beneath.DeleteTree(fileDir);
                continue;
            }
            var undoPath = _layout.Undo(groupId, f.FileKey, f.UndoName!);
            if (Beneath.FileExists(undoPath))
            {
                using (var undo = Beneath.OpenRead(undoPath))
                using (var mirror = Beneath.OpenFile(_layout.Mirror(groupId, f.FileKey), FileMode.Open, FileAccess.ReadWrite))
                {
                    var target = new HandleFile(mirror);
                    try
                    {
                        UndoRecord.Apply(undo, target, tolerateTruncation: true);
                        target.Flush();
                    }
                    catch (CorruptDataException)
                    {
                        // Header unreadable: it is synced before the mirror is touched, so the mirror is unchanged.
                    }
                }
                Beneath.Delete(undoPath);
            }
            Beneath.Delete(_layout.PendingSignature(groupId, f.FileKey, journal.PointId));
        }
    }

    private void FinishDelete(string groupId, JournalDocument journal)
    {
        foreach (var r in journal.Rollbacks ?? [])
        {
            RollMirrorBack(groupId, r);
        }
        foreach (var m in journal.Merges)
        {
            if (m.MergeInto is not null)
            {
                var merged = _layout.MergedUndo(groupId, m.FileKey, m.MergeInto);
                if (Beneath.FileExists(merged))
                {
                    Beneath.Rename(merged, _layout.Undo(groupId, m.FileKey, m.MergeInto));
                }
            }
            Beneath.Delete(_layout.Undo(groupId, m.FileKey, m.Remove));
        }
        foreach (var f in journal.Files)
        {
            Beneath.DeleteTree(_layout.File(groupId, f.FileKey));
        }
    }

    /// <summary>
    /// Turns a mirror back into the previous version once the newest version's point is gone: its undo record
    /// is applied in place (writing the same bytes again is harmless, so a crash here is finished by the next
    /// Open), the mirror is read once to rebuild its signature, checked against the previous version's digest,
    /// and only then is the record removed.
    /// </summary>
    private void RollMirrorBack(string groupId, JournalRollback r)
    {
        var undoPath = _layout.Undo(groupId, r.FileKey, r.UndoName);
        if (!Beneath.FileExists(undoPath))
        {
            return; // finished before a crash
        }
        var mirrorPath = _layout.Mirror(groupId, r.FileKey);
        using (var undo = Beneath.OpenRead(undoPath))
        using (var mirror = Beneath.OpenFile(mirrorPath, FileMode.Open, FileAccess.ReadWrite))
        {
            var target = new HandleFile(mirror);
            UndoRecord.Apply(undo, target);
            target.Flush();
        }
        var signature = ReadVersion(new VersionReader(Beneath, mirrorPath, []), r.BlockSize, null, null, CancellationToken.None);
        if (signature.Digest() != r.Digest)
        {
            throw new RepositoryCorruptException(
                $"'{r.FileKey}' in group {groupId}: after removing its newest version the mirror has digest {signature.Digest()}, but version {r.UndoName} recorded {r.Digest}; the undo record {undoPath} is kept (run verify)");
        }
        var pending = _layout.PendingSignature(groupId, r.FileKey, r.UndoName);
        using (var output = Beneath.OpenStream(pending, FileMode.Create, FileAccess.Write, 1 << 16))
        {
            SignatureFormat.Write(signature, output);
            output.Flush(flushToDisk: true);
        }
        Beneath.Rename(pending, _layout.Signature(groupId, r.FileKey));
        Fault("rollback-signed");
        Beneath.Delete(undoPath);
    }

    /// <summary>
    /// Deletes a restore point. A file version only it referenced goes away: the oldest version by dropping its
    /// undo record, a middle one by merging its undo record into the next older one, the newest one (the
    /// mirror) by applying the previous version's undo record to the mirror after the point is gone.
    /// </summary>
    public void DeletePoint(string pointId)
    {
        var doc = FindPointDocument(pointId) ?? throw new RestorePointNotFoundException($"restore point {pointId} does not exist in {Directory}");
        var g = doc.GroupId;
        using var groupLock = GroupLock.Exclusive(Beneath, _layout.Group(g), "delete", ReaderWait, refuse: () => RefuseIfPinned(g, $"deleting {pointId}"));
        Recover(g);
        var points = LoadPoints(g);
        if (points.All(p => p.PointId != pointId))
        {
            throw new RestorePointNotFoundException($"restore point {pointId} does not exist in {Directory}");
        }
        var remaining = points.Where(p => p.PointId != pointId).ToList();
        var merges = new List<JournalMerge>();
        var removeFiles = new List<JournalFile>();
        var rollbacks = new List<JournalRollback>();
        foreach (var f in doc.Files)
        {
            if (remaining.Any(p => p.Files.Any(x => x.FileKey == f.FileKey && x.VersionId == f.VersionId)))
            {
                continue;
            }
            var chain = VersionChain(points, f.FileKey);
            var j = chain.FindIndex(v => v.VersionId == f.VersionId);
            if (chain.Count == 1)
            {
                removeFiles.Add(new JournalFile(f.FileKey, true, null));
            }
            else if (j == chain.Count - 1)
            {
                var previous = chain[j - 1];
                rollbacks.Add(new JournalRollback(f.FileKey, previous.VersionId, previous.Digest, previous.BlockSize));
            }
            else
            {
                merges.Add(new JournalMerge(f.FileKey, chain[j].VersionId, j == 0 ? null : chain[j - 1].VersionId));
            }
        }
        foreach (var r in rollbacks)
        {
            // The mirror is rewritten from this record once the point is gone: a damaged record must stop the deletion now.
            var path = _layout.Undo(g, r.FileKey, r.UndoName);
            try
            {
                using var record = Beneath.OpenRead(path);
                UndoRecord.Verify(record);
            }
            catch (CorruptDataException e)
            {
                throw new RepositoryCorruptException($"cannot delete {pointId}: {path} is damaged, so the previous version of '{r.FileKey}' cannot be restored into the mirror: {e.Message}", e);
            }
        }
        var journal = new JournalDocument(JournalDocument.Delete, pointId, removeFiles, merges, rollbacks.Count > 0 ? rollbacks : null);
        Documents.Write(_layout.Journal(g), journal);
        try
        {
            Fault("delete-journal-written");
            foreach (var m in merges.Where(m => m.MergeInto is not null))
            {
                var mergedPath = _layout.MergedUndo(g, m.FileKey, m.MergeInto!);
                using (var newer = Beneath.OpenRead(_layout.Undo(g, m.FileKey, m.Remove)))
                using (var older = Beneath.OpenRead(_layout.Undo(g, m.FileKey, m.MergeInto!)))
                using (var output = Beneath.OpenStream(mergedPath, FileMode.Create, FileAccess.Write))
                {
                    UndoRecord.Merge(newer, older, output);
                    output.Flush(flushToDisk: true);
                }
                Beneath.FsyncDirectory(Path.GetDirectoryName(mergedPath)!);
            }
            Fault("merged-written");
            Beneath.Delete(_layout.Point(g, pointId)); // the deletion takes effect here
            Fault("manifest-deleted");
        }
        catch (SimulatedCrashException)
        {
            throw;
        }
        catch (Exception e)
        {
            Recover(g); // manifest still there → undo the preparation
            if (e is CorruptDataException)
            {
                throw new RepositoryCorruptException($"cannot delete {pointId}: an undo record is damaged: {e.Message}", e);
            }
            throw;
        }
        Recover(g);
    }
}
