using Backupd.Storage.Repository;

namespace Backupd.Daemon.Workflow;

/// <summary>
/// The workflow's <see cref="IBackupTarget"/> over the versioned repository (issue 3): a commit returns the
/// <see cref="RestorePointInfo"/> the repository wrote, which the run records in the catalog as it is.
/// With <paramref name="copyBytesPerSecond"/>, every read of the run waits on one shared <see cref="BandwidthLimiter"/>.
/// <paramref name="blockSize"/> (a policy's block-size) applies to files backed up for the first time; a file
/// already in the repository keeps its own. Null: the repository's default.
/// </summary>
public sealed class RepositoryBackupTarget(string directory, long? copyBytesPerSecond = null, int? blockSize = null) : IBackupTarget, IDisposable
{
    private BackupRepository? _repository;
    private readonly BandwidthLimiter? _limiter = BandwidthLimiter.Create(copyBytesPerSecond);

    public string Description => Path.GetFullPath(directory);

    /// <summary>See <see cref="BackupRepository.ReaderWait"/>.</summary>
    public TimeSpan ReaderWait { get; init; } = BackupRepository.DefaultReaderWait;

    /// <summary>See <see cref="BackupRepository.ScrubCycle"/>.</summary>
    public int ScrubCycle { get; init; } = BackupRepository.DefaultScrubCycle;

    public BackupRepository Repository => _repository ?? throw new InvalidOperationException("EnsureWritable opens the repository first");

    public void EnsureWritable()
    {
        try
        {
            if (_repository is null)
            {
                var repository = BackupRepository.Open(Description);
                if (blockSize is { } size) repository.BlockSize = size;
                repository.ReaderWait = ReaderWait;
                repository.ScrubCycle = ScrubCycle;
                _repository = repository;
            }
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or RepositoryException)
        {
            throw new BackupRefusedException(RefusalKind.TargetUnavailable, $"repository '{Description}' is not writable: {e.Message}");
        }
    }

    public IBackupSession Begin(string groupId, string groupName, CancellationToken ct = default)
    {
        EnsureWritable();
        try
        {
            return new Session(this, Repository.BeginBackup(groupId, groupName, ct), groupId);
        }
        catch (RepositoryBusyException e)
        {
            throw new BackupRefusedException(RefusalKind.Busy, e.Message);
        }
    }

    public void Dispose() => _repository?.Dispose();

    private sealed class Session(RepositoryBackupTarget owner, BackupSession session, string groupId) : IBackupSession
    {
        public RestorePointInfo? Previous { get; } = owner.Repository.ListPoints(groupId) is [var newest, ..] ? newest : null;

        public Task<StoredFile> AddFileAsync(string fileKey, ChainImage image, IProgress<long>? progress, CancellationToken ct) =>
            AddFileAsync(fileKey, image, progress, null, ct);

        public async Task<StoredFile> AddFileAsync(string fileKey, ChainImage image, IProgress<long>? progress, Storage.ChangedBlocks.ChangedBlockRead? changed, CancellationToken ct)
        {
            var v = await session.AddFileAsync(fileKey, image.Path, new SourceFileInfo(image.Path, image.Format, image.BackingFile, image.VirtualSize), progress, ct,
                owner._limiter is { } l ? l.WaitAsync : null, changed);
            return new StoredFile(v.FileKey, v.BytesRead, v.BytesWritten, v.Digest, v.Elapsed, v.FileSize)
            {
                ScrubbedBlocks = v.Scrub?.BlocksChecked ?? 0,
                HealedBlocks = v.Scrub?.HealedBlocks.Count ?? 0,
                Healing = v.Scrub?.Describe(fileKey),
                ReadMode = v.ReadMode,
                FullReadReason = v.FullReadReason,
                CleanButChanged = v.CleanButChanged,
            };
        }

        public void AttachMetadata(string name, string content) => session.AttachMetadata(name, content);

        public RestorePointInfo Commit() => session.Commit();

        public void Dispose() => session.Dispose();
    }
}
