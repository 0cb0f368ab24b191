namespace Backupd.Daemon.Restore;

/// <summary>Where restored bytes come from: the repository (BackupRepository.RestoreFileAsync), or a fake in tests.</summary>
public interface IRestoreSource
{
    /// <summary>Writes one file version to a new file at <paramref name="targetPath"/> (refusing an existing one), verified against its digest.</summary>
    Task RestoreFileAsync(string pointId, string fileKey, string targetPath, IProgress<long>? progress, CancellationToken ct);

    /// <summary>True when the file or block device at <paramref name="path"/> holds exactly that file version (length and digest).</summary>
    Task<bool> MatchesAsync(string pointId, string fileKey, string path, CancellationToken ct);
}
