using Microsoft.Extensions.Logging;

namespace Backupd.Daemon.Workflow;

/// <summary>
/// Every log line of the backup workflow, merge-back and recovery. Event ids are stable (docs/operations.md lists
/// the ones an operator acts on): 1000-1099 BackupWorkflow, 1100-1199 OverlayMerger, 1200-1299 Recovery.
/// </summary>
internal static partial class WorkflowLog
{
    // ---------------------------------------------------------------- BackupWorkflow
    [LoggerMessage(EventId = 1001, EventName = "DiskSkipped", Level = LogLevel.Information, Message = "{Domain}: skipping disk {Target}: {Reason}")]
    public static partial void DiskSkipped(this ILogger logger, string domain, string target, string reason);

    [LoggerMessage(EventId = 1002, EventName = "RunCanceled", Level = LogLevel.Warning, Message = "{Domain}: backup run {RunId} canceled; merging the overlays back")]
    public static partial void RunCanceled(this ILogger logger, string domain, string runId);

    [LoggerMessage(EventId = 1003, EventName = "RunFailed", Level = LogLevel.Error, Message = "{Domain}: backup run {RunId} failed: {Message}")]
    public static partial void RunFailed(this ILogger logger, Exception exception, string domain, string runId, string message);

    [LoggerMessage(EventId = 1004, EventName = "OverlayLeftBehind", Level = LogLevel.Critical,
        Message = "{Domain}: run {RunId} left disk(s) on their overlay, guest data is in them: {Disks}. Run 'backupd recover' (see docs/operations.md)")]
    public static partial void OverlayLeftBehind(this ILogger logger, string domain, string runId, string disks);

    [LoggerMessage(EventId = 1005, EventName = "QuiesceFellBack", Level = LogLevel.Warning, Message = "{Domain}: quiesced snapshot failed ({Message}); falling back to crash-consistent")]
    public static partial void QuiesceFellBack(this ILogger logger, Exception exception, string domain, string message);

    [LoggerMessage(EventId = 1006, EventName = "SnapshotLuksRetry", Level = LogLevel.Warning,
        Message = "{Domain}: snapshot attempt {Attempt} failed in QEMU's LUKS key set-up ({Message}); the snapshot was rolled back, retrying")]
    public static partial void SnapshotLuksRetry(this ILogger logger, string domain, int attempt, string message);

    [LoggerMessage(EventId = 1007, EventName = "RepositoryHealed", Level = LogLevel.Warning, Message = "{Domain}: {Healing}")]
    public static partial void RepositoryHealed(this ILogger logger, string domain, string healing);

    [LoggerMessage(EventId = 1008, EventName = "CommitReportFailed", Level = LogLevel.Error, Message = "reporting the commit step failed; committing anyway")]
    public static partial void CommitReportFailed(this ILogger logger, Exception exception);

    [LoggerMessage(EventId = 1009, EventName = "JournalBeforeCommitFailed", Level = LogLevel.Error, Message = "cannot update the run journal before the commit; committing anyway")]
    public static partial void JournalBeforeCommitFailed(this ILogger logger, Exception exception);

    [LoggerMessage(EventId = 1010, EventName = "MergeCleanupFailed", Level = LogLevel.Error,
        Message = "{Domain}: the disks are back on their base, but fixing the definition or deleting an overlay failed: {Message}")]
    public static partial void MergeCleanupFailed(this ILogger logger, Exception exception, string domain, string message);

    [LoggerMessage(EventId = 1011, EventName = "DomainUnreadableForCommit", Level = LogLevel.Error, Message = "cannot read domain {Uuid} from libvirt for the commit: {Message}")]
    public static partial void DomainUnreadableForCommit(this ILogger logger, Exception exception, string uuid, string message);

    [LoggerMessage(EventId = 1012, EventName = "DomainGoneCommittingOffline", Level = LogLevel.Warning, Message = "{Domain}: the domain is gone; committing {Target} offline")]
    public static partial void DomainGoneCommittingOffline(this ILogger logger, string domain, string target);

    [LoggerMessage(EventId = 1013, EventName = "MergingBack", Level = LogLevel.Information, Message = "{Domain}: merging back {Target}: {State}, source {Source}")]
    public static partial void MergingBack(this ILogger logger, string domain, string target, string state, string source);

    [LoggerMessage(EventId = 1014, EventName = "JournalUpdateFailed", Level = LogLevel.Error, Message = "cannot update the run journal {RunId}")]
    public static partial void JournalUpdateFailed(this ILogger logger, Exception exception, string runId);

    [LoggerMessage(EventId = 1015, EventName = "ShutOffBackupFailed", Level = LogLevel.Error, Message = "{Domain}: backup of the shut-off domain failed: {Message}")]
    public static partial void ShutOffBackupFailed(this ILogger logger, Exception exception, string domain, string message);

    // ---------------------------------------------------------------- checkpoints (changed-block tracking)
    [LoggerMessage(EventId = 1301, EventName = "CheckpointNotCreated", Level = LogLevel.Warning,
        Message = "{Domain}: checkpoint {Checkpoint} could not be created ({Problem}); this backup goes on without one and the next reads in full")]
    public static partial void CheckpointNotCreated(this ILogger logger, string domain, string checkpoint, string problem);

    [LoggerMessage(EventId = 1302, EventName = "CheckpointDeleted", Level = LogLevel.Information, Message = "{Domain}: deleted checkpoint {Checkpoint}{How}")]
    public static partial void CheckpointDeleted(this ILogger logger, string domain, string checkpoint, string how);

    [LoggerMessage(EventId = 1303, EventName = "CheckpointCleanupFailed", Level = LogLevel.Warning,
        Message = "{Domain}: checkpoint {Checkpoint} could not be deleted: {Problem}; it is never trusted (names are unique), `backupd recover` tries again")]
    public static partial void CheckpointCleanupFailed(this ILogger logger, string domain, string checkpoint, string problem);

    [LoggerMessage(EventId = 1304, EventName = "SafetyNetMismatch", Level = LogLevel.Critical,
        Message = "{Domain}: the safety-net read of {FileKey} found {Blocks} block(s) that changed although the dirty bitmap called them clean; restore point {Point} fails verification and the next backup reads in full")]
    public static partial void SafetyNetMismatch(this ILogger logger, string domain, string fileKey, long blocks, string point);

    [LoggerMessage(EventId = 1305, EventName = "DiskReadInFull", Level = LogLevel.Information, Message = "{Domain}: {Target} is read in full: {Reason}")]
    public static partial void DiskReadInFull(this ILogger logger, string domain, string target, string reason);

    [LoggerMessage(EventId = 1306, EventName = "ExportNotStopped", Level = LogLevel.Error,
        Message = "{Domain}: the qemu-nbd export (pid {Pid}) of a frozen base could not be stopped before the commit: {Problem}")]
    public static partial void ExportNotStopped(this ILogger logger, Exception exception, string domain, int pid, string problem);

    // ---------------------------------------------------------------- OverlayMerger
    [LoggerMessage(EventId = 1101, EventName = "MergeBackAttemptFailed", Level = LogLevel.Warning,
        Message = "commit of {Target} (overlay {Overlay}) attempt {Attempt}/{Attempts} failed: {Problem}")]
    public static partial void MergeBackAttemptFailed(this ILogger logger, string target, string overlay, int attempt, int attempts, string problem);

    [LoggerMessage(EventId = 1102, EventName = "DefinitionRepointed", Level = LogLevel.Information, Message = "persistent definition of {Uuid} points at the base images again ({Targets})")]
    public static partial void DefinitionRepointed(this ILogger logger, string uuid, string targets);

    [LoggerMessage(EventId = 1103, EventName = "OverlayDeleted", Level = LogLevel.Information, Message = "deleted overlay {Overlay} of {Target}")]
    public static partial void OverlayDeleted(this ILogger logger, string overlay, string target);

    // ---------------------------------------------------------------- Recovery
    [LoggerMessage(EventId = 1201, EventName = "RecoveryFailed", Level = LogLevel.Critical, Message = "recovery of {Domain} failed: {Message}")]
    public static partial void RecoveryFailed(this ILogger logger, Exception exception, string domain, string message);

    [LoggerMessage(EventId = 1202, EventName = "OverlayBuried", Level = LogLevel.Critical,
        Message = "recovery of {Domain} disk {Target}: overlay {Overlay} is buried under another snapshot; merge it by hand")]
    public static partial void OverlayBuried(this ILogger logger, string domain, string target, string overlay);

    [LoggerMessage(EventId = 1203, EventName = "OverlayStillInUse", Level = LogLevel.Critical, Message = "recovery of {Domain} disk {Target}: overlay {Overlay} is still in use: {Problem}")]
    public static partial void OverlayStillInUse(this ILogger logger, string domain, string target, string overlay, string? problem);
}
