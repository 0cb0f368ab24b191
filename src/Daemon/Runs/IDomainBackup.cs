using Backupd.Daemon.Workflow;
using Backupd.Storage.Catalog;
using Backupd.Storage.Repository;

namespace Backupd.Daemon.Runs;

/// <summary>A domain to back up: its libvirt UUID (the identity) and current name.</summary>
public sealed record BackupDomain(Guid Uuid, string Name);

/// <summary>Where a run is: the workflow step and the bytes copied so far out of the total, when known.</summary>
public sealed record RunProgress(string Step, long Bytes = 0, long? TotalBytes = null);

/// <summary>
/// What a successful workflow hands back: the restore point as <c>BackupSession.Commit</c> returned it
/// (durable when this is returned), the repository directory it lives in, the run's counters and the
/// workflow's own per-disk result (null from a test double).
/// The point's group id must be the domain UUID; attach the domain XML as metadata "domain.xml".
/// </summary>
public sealed record DomainBackupOutcome(RestorePointInfo Point, string RepositoryDirectory, RunStats Stats, BackupResult? Workflow = null);

/// <summary>
/// The live backup workflow as the runner sees it (<see cref="WorkflowDomainBackup"/> over libvirt and the
/// repository). The runner owns locking and catalog records; the workflow owns the hypervisor and
/// the repository session, and returns only after <c>BackupSession.Commit</c> returned.
/// </summary>
public interface IDomainBackup
{
    /// <summary>The domain named by name or UUID, or null if the hypervisor has none.</summary>
    BackupDomain? Resolve(string nameOrUuid);

    /// <summary>
    /// Backs the domain up into a new restore point. Throws on failure (the guest must be back on its original chain by then).
    /// <paramref name="catalogRunId"/>: the catalog's run, null for a run the catalog does not record.
    /// </summary>
    Task<DomainBackupOutcome> BackupAsync(BackupDomain domain, long? catalogRunId, IProgress<RunProgress> progress, CancellationToken ct);
}
