using Microsoft.Extensions.Logging;

namespace Backupd.Daemon.Scheduling;

/// <summary>
/// Every log line of the scheduler. Event ids are stable (docs/operations.md lists the ones an operator acts on):
/// 3000-3099 SchedulingService, 3100-3199 PolicyScheduler, 3200-3299 PolicyDispatcher, 3300-3399 the scheduled
/// run's catalog, retention and verify steps (CatalogBackupRunner).
/// </summary>
internal static partial class SchedulingLog
{
    // ---------------------------------------------------------------- SchedulingService
    [LoggerMessage(EventId = 3001, EventName = "StoppingDuringFirstLoad", Level = LogLevel.Information, Message = "stopping during the first policy load")]
    public static partial void StoppingDuringFirstLoad(this ILogger logger);

    [LoggerMessage(EventId = 3002, EventName = "ReloadSignalled", Level = LogLevel.Information, Message = "SIGHUP: reloading policies")]
    public static partial void ReloadSignalled(this ILogger logger);

    [LoggerMessage(EventId = 3003, EventName = "PolicyReloadFailed", Level = LogLevel.Error, Message = "reloading policies from {Directory} failed: {Error}")]
    public static partial void PolicyReloadFailed(this ILogger logger, Exception exception, string directory, string error);

    [LoggerMessage(EventId = 3004, EventName = "Stopping", Level = LogLevel.Information, Message = "stopping: no new runs; running backups are cancelled and still commit and pivot")]
    public static partial void Stopping(this ILogger logger);

    [LoggerMessage(EventId = 3005, EventName = "WatchdogPinging", Level = LogLevel.Information, Message = "systemd watchdog: pinging every {Interval}")]
    public static partial void WatchdogPinging(this ILogger logger, TimeSpan interval);

    [LoggerMessage(EventId = 3006, EventName = "PoliciesDirectoryMissing", Level = LogLevel.Warning, Message = "policies directory {Directory} does not exist: nothing is scheduled")]
    public static partial void PoliciesDirectoryMissing(this ILogger logger, string directory);

    [LoggerMessage(EventId = 3007, EventName = "StopTimeoutTooShort", Level = LogLevel.Warning, Message = "{Warning}")]
    public static partial void StopTimeoutTooShort(this ILogger logger, string warning);

    [LoggerMessage(EventId = 3008, EventName = "LeftoversRecovered", Level = LogLevel.Warning, Message = "recovery: {Count} leftover overlay action(s); all resolved: {Resolved}")]
    public static partial void LeftoversRecovered(this ILogger logger, int count, bool resolved);

    [LoggerMessage(EventId = 3009, EventName = "RecoverySkipped", Level = LogLevel.Error, Message = "recovery skipped: cannot connect to libvirt at {Uri}: {Error}")]
    public static partial void RecoverySkipped(this ILogger logger, Exception exception, string uri, string error);

    // ---------------------------------------------------------------- PolicyScheduler
    [LoggerMessage(EventId = 3101, EventName = "PolicyNotScheduled", Level = LogLevel.Error, Message = "policy {Policy}: could not be scheduled: {Error}")]
    public static partial void PolicyNotScheduled(this ILogger logger, Exception exception, string policy, string error);

    [LoggerMessage(EventId = 3102, EventName = "PolicyInvalid", Level = LogLevel.Error, Message = "{Error}")]
    public static partial void PolicyInvalid(this ILogger logger, string error);

    [LoggerMessage(EventId = 3103, EventName = "PolicyFileKeptPrevious", Level = LogLevel.Warning, Message = "{File}: has errors; its previously loaded policies stay in force")]
    public static partial void PolicyFileKeptPrevious(this ILogger logger, string file);

    [LoggerMessage(EventId = 3104, EventName = "PoliciesApplied", Level = LogLevel.Information, Message = "policies: {Count} in force ({Added} added, {Changed} changed, {Removed} removed)")]
    public static partial void PoliciesApplied(this ILogger logger, int count, int added, int changed, int removed);

    [LoggerMessage(EventId = 3105, EventName = "MissedFireCatchUp", Level = LogLevel.Information, Message = "policy {Policy}: catching up the fire of {Missed:u} missed while the daemon was down")]
    public static partial void MissedFireCatchUp(this ILogger logger, string policy, DateTimeOffset missed);

    // ---------------------------------------------------------------- PolicyDispatcher
    [LoggerMessage(EventId = 3201, EventName = "DomainListFailed", Level = LogLevel.Error, Message = "policy {Policy}: cannot list domains on {Uri}: {Error}")]
    public static partial void DomainListFailed(this ILogger logger, Exception exception, string policy, string uri, string error);

    [LoggerMessage(EventId = 3202, EventName = "NoDomainMatches", Level = LogLevel.Warning, Message = "policy {Policy}: no domain on {Uri} matches {Domains}")]
    public static partial void NoDomainMatches(this ILogger logger, string policy, string uri, string domains);

    [LoggerMessage(EventId = 3203, EventName = "VerifyStarting", Level = LogLevel.Information, Message = "policy {Policy}: verifying the restore points in {Repository}")]
    public static partial void VerifyStarting(this ILogger logger, string policy, string repository);

    [LoggerMessage(EventId = 3204, EventName = "VerifyAllIntact", Level = LogLevel.Information, Message = "policy {Policy}: every restore point verified")]
    public static partial void VerifyAllIntact(this ILogger logger, string policy);

    [LoggerMessage(EventId = 3205, EventName = "VerifyFoundDamage", Level = LogLevel.Error,
        Message = "policy {Policy}: verification found damaged restore points (see `backupd show` and the catalog events)")]
    public static partial void VerifyFoundDamage(this ILogger logger, string policy);

    [LoggerMessage(EventId = 3206, EventName = "VerifyFailed", Level = LogLevel.Error, Message = "policy {Policy}: verification failed: {Error}")]
    public static partial void VerifyFailed(this ILogger logger, Exception exception, string policy, string error);

    [LoggerMessage(EventId = 3207, EventName = "DomainSkippedStillRunning", Level = LogLevel.Warning,
        Message = "policy {Policy}: skipping {Domain}: a run for policy {Holder} is still in progress")]
    public static partial void DomainSkippedStillRunning(this ILogger logger, string policy, string domain, string holder);

    [LoggerMessage(EventId = 3208, EventName = "BackupStarting", Level = LogLevel.Information, Message = "policy {Policy}: backing up {Domain}")]
    public static partial void BackupStarting(this ILogger logger, string policy, string domain);

    [LoggerMessage(EventId = 3209, EventName = "BackupDone", Level = LogLevel.Information, Message = "policy {Policy}: {Domain} done")]
    public static partial void BackupDone(this ILogger logger, string policy, string domain);

    [LoggerMessage(EventId = 3210, EventName = "DomainSkippedBusy", Level = LogLevel.Warning, Message = "policy {Policy}: skipping {Domain}: {Reason}")]
    public static partial void DomainSkippedBusy(this ILogger logger, string policy, string domain, string reason);

    [LoggerMessage(EventId = 3211, EventName = "BackupCancelled", Level = LogLevel.Warning, Message = "policy {Policy}: {Domain} cancelled (daemon stopping)")]
    public static partial void BackupCancelled(this ILogger logger, string policy, string domain);

    [LoggerMessage(EventId = 3212, EventName = "BackupFailed", Level = LogLevel.Error, Message = "policy {Policy}: {Domain} failed: {Error}")]
    public static partial void BackupFailed(this ILogger logger, Exception exception, string policy, string domain, string error);

    // ---------------------------------------------------------------- the scheduled run's catalog, retention and verify steps
    [LoggerMessage(EventId = 3301, EventName = "PointRecorded", Level = LogLevel.Information, Message = "policy {Policy}: restore point {Point} of {Domain} in {Repository} (run {Run})")]
    public static partial void PointRecorded(this ILogger logger, string policy, string point, string domain, string repository, long? run);

    [LoggerMessage(EventId = 3302, EventName = "PointPruned", Level = LogLevel.Information, Message = "policy {Policy}: pruned restore point {Point} of {Domain}: {Reason}")]
    public static partial void PointPruned(this ILogger logger, string policy, string point, string domain, string reason);

    [LoggerMessage(EventId = 3303, EventName = "PruneRefusedShared", Level = LogLevel.Error, Message = "policy {Policy}: {Reason}")]
    public static partial void PruneRefusedShared(this ILogger logger, string policy, string reason);

    [LoggerMessage(EventId = 3304, EventName = "PointVerified", Level = LogLevel.Information, Message = "policy {Policy}: restore point {Point} verified")]
    public static partial void PointVerified(this ILogger logger, string policy, string point);

    [LoggerMessage(EventId = 3305, EventName = "NewPointDamaged", Level = LogLevel.Error, Message = "policy {Policy}: restore point {Point} is damaged: {Problems}")]
    public static partial void NewPointDamaged(this ILogger logger, string policy, string point, string problems);

    [LoggerMessage(EventId = 3306, EventName = "KeptPointDamaged", Level = LogLevel.Error, Message = "policy {Policy}: restore point {Point} of {Domain} is damaged: {Problems}")]
    public static partial void KeptPointDamaged(this ILogger logger, string policy, string point, string domain, string problems);

    [LoggerMessage(EventId = 3213, EventName = "DrillsFailed", Level = LogLevel.Error, Message = "policy {Policy}: restore drills failed: {Error}")]
    public static partial void DrillsFailed(this ILogger logger, Exception exception, string policy, string error);

    [LoggerMessage(EventId = 3307, EventName = "ScheduledDrillNotRun", Level = LogLevel.Error, Message = "policy {Policy}: restore drill of {Domain} could not run: {Error}")]
    public static partial void ScheduledDrillNotRun(this ILogger logger, string policy, string domain, string error);
}
