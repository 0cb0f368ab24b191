using Backupd.Storage.Repository;

namespace Backupd.Daemon.Workflow;

/// <summary>
/// <see cref="IBackupTarget"/> over the versioned repository (src/Storage/Repository): one group per
/// domain (its UUID), one restore point per run, one file per chain file (key &lt;target&gt;.&lt;depth&gt;).
/// Only changed blocks are written; the newest version stays a plain image.
/// </summary>
public sealed class RepositoryBackupTarget(string directory) : IBackupTarget
{
    public string Description => directory;

    public void EnsureWritable()
    {
        try
        {
            using var repository = BackupRepository.Open(directory);
            var probe = Path.Combine(repository.Directory, "groups", $".backupd-probe-{Environment.ProcessId}");
            File.WriteAllText(probe, "probe");
            File.Delete(probe);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or RepositoryException)
        {
            throw new BackupRefusedException(RefusalKind.TargetUnavailable, $"repository directory '{directory}' is not writable: {e.Message}");
        }
    }

    public IBackupSession Begin(string groupId, string groupName)
    {
        var repository = BackupRepository.Open(directory);
        try
        {
            return new Session(repository, repository.BeginBackup(groupId, groupName));
        }
        catch (RepositoryBusyException e)
        {
            repository.Dispose();
            throw new BackupRefusedException(RefusalKind.Busy, $"another backup of '{groupName}' is writing to '{directory}': {e.Message}");
        }
        catch
        {
            repository.Dispose();
            throw;
        }
    }

    private sealed class Session(BackupRepository repository, BackupSession session) : IBackupSession
    {
        public async Task<StoredFile> AddFileAsync(string fileKey, ChainImage image, IProgress<long>? progress, CancellationToken ct)
        {
            var version = await session.AddFileAsync(fileKey, image.Path,
                new SourceFileInfo(image.Path, image.Format, image.BackingFile, image.VirtualSize), progress, ct);
            return new StoredFile(fileKey, version.BytesRead, version.BytesWritten, version.Digest, version.Elapsed);
        }

        public void AttachMetadata(string name, string content) => session.AttachMetadata(name, content);

        public string Commit() => session.Commit().PointId;

        public void Dispose()
        {
            session.Dispose();
            repository.Dispose();
        }
    }
}
