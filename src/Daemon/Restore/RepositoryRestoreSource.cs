using Backupd.Storage.Repository;

namespace Backupd.Daemon.Restore;

/// <summary>Restored bytes from the versioned repository: streamed, sparse, digest-verified, never over an existing file.</summary>
public sealed class RepositoryRestoreSource(BackupRepository repository) : IRestoreSource
{
    public Task RestoreFileAsync(string pointId, string fileKey, string targetPath, IProgress<long>? progress, CancellationToken ct) =>
        repository.RestoreFileAsync(pointId, fileKey, targetPath, progress, ct);

    public Task<bool> MatchesAsync(string pointId, string fileKey, string path, CancellationToken ct) =>
        repository.MatchesAsync(pointId, fileKey, path, null, ct);
}
