using Backupd.Storage.Repository;

namespace Backupd.Daemon.Workflow;

/// <summary>
/// Where the copy goes: the narrow slice of the repository the workflow needs, so the workflow can
/// be tested with a fake and the repository can change underneath.
/// </summary>
public interface IBackupTarget
{
    /// <summary>For messages: e.g. the repository directory.</summary>
    string Description { get; }

    /// <summary>Throws <see cref="BackupRefusedException"/> (TargetUnavailable) when nothing could be written.</summary>
    void EnsureWritable();

    /// <summary>
    /// One restore point for one domain. Throws <see cref="BackupRefusedException"/> (Busy) if another run holds the group,
    /// or if restores/verifies of it outlast the reader wait; <paramref name="ct"/> ends that wait.
    /// </summary>
    IBackupSession Begin(string groupId, string groupName, CancellationToken ct = default);
}

/// <summary>A restore point being written. Dispose without <see cref="Commit"/> rolls it back.</summary>
public interface IBackupSession : IDisposable
{
    /// <summary>Streams one file; <paramref name="progress"/> is called synchronously on the copying thread.</summary>
    Task<StoredFile> AddFileAsync(string fileKey, ChainImage image, IProgress<long>? progress, CancellationToken ct);

    /// <summary>
    /// With <paramref name="changed"/>: read only its plan (or, safety net, everything checked against it). A target that cannot
    /// reads in full and says so; the repository itself may also refuse the plan (FileVersionInfo.FullReadReason).
    /// </summary>
    async Task<StoredFile> AddFileAsync(string fileKey, ChainImage image, IProgress<long>? progress, Storage.ChangedBlocks.ChangedBlockRead? changed, CancellationToken ct)
    {
        var stored = await AddFileAsync(fileKey, image, progress, ct);
        return changed is null ? stored : stored with { FullReadReason = "this backup target reads files in full" };
    }

    void AttachMetadata(string name, string content);

    /// <summary>The group's newest committed point, read under this session's writer lock (null: none yet). Changed-block tracking trusts only it.</summary>
    RestorePointInfo? Previous => null;

    /// <summary>Durable when it returns: the committed restore point, as the repository wrote it.</summary>
    RestorePointInfo Commit();
}

/// <summary><paramref name="FileSize"/>: the stored file's size in bytes, as the copy measured the source.</summary>
public sealed record StoredFile(string FileKey, long BytesRead, long BytesWritten, string Digest, TimeSpan Elapsed, long FileSize)
{
    /// <summary>Mirror blocks the backup re-read and checked against their signature (the scrub sample and verify's list).</summary>
    public long ScrubbedBlocks { get; init; }

    /// <summary>Damaged mirror blocks rewritten from the source.</summary>
    public int HealedBlocks { get; init; }

    /// <summary>What was healed and which points could not be restored before; null when the scrub found nothing.</summary>
    public string? Healing { get; init; }

    /// <summary><see cref="Storage.ChangedBlocks.ReadModes"/>: incremental (only the read plan), full, or safety-net (everything, checked against the plan).</summary>
    public string ReadMode { get; init; } = Storage.ChangedBlocks.ReadModes.Full;

    /// <summary>Why a file was read in full although a plan was asked for (null otherwise).</summary>
    public string? FullReadReason { get; init; }

    /// <summary>Safety net only: blocks the plan called clean that differed from the mirror (must be 0).</summary>
    public long CleanButChanged { get; init; }
}
