using Backupd.Daemon.Workflow;
using Backupd.Storage.Catalog;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;

namespace Backupd.Daemon.Runs;

/// <summary>
/// What became of one backup, the one result every caller gets: the catalog's run id (null when the catalog
/// does not record the run), the domain, the committed restore point as the catalog stores it, the counters,
/// and the workflow's own per-disk result (its <see cref="BackupResult.RunId"/> is the journal's run id).
/// </summary>
public sealed record BackupRun(long? CatalogRunId, BackupDomain Domain, RestorePointRecord Point, RunStats Stats, BackupResult? Workflow)
{
    /// <summary>The host run journal's id of the run (STATE/journal, overlay names); null from a test double.</summary>
    public string? JournalRunId => Workflow?.RunId;
}

/// <summary>Who asked for a backup: "cli" or "schedule", the user or daemon, and the policy name if any.</summary>
public sealed record RunOrigin(string Trigger, string RequestedBy, string? PolicyName = null)
{
    /// <summary>`backupd backup --domain` by the user running it.</summary>
    public static RunOrigin Command => new("cli", Environment.UserName);

    /// <summary>The daemon's scheduler, for <paramref name="policy"/>.</summary>
    public static RunOrigin Schedule(string policy) => new("schedule", "backupd daemon", policy);
}

/// <summary>The named domain does not exist on the hypervisor.</summary>
public sealed class DomainNotFoundException(string domain) : Exception($"domain '{domain}' does not exist on this hypervisor (by name or UUID)")
{
    public string Domain { get; } = domain;
}

/// <summary>
/// The repository holds a new restore point but the catalog could not record it. The data is safe; the record
/// is written at the next daemon start, backup of the domain or `backupd recover` when it was kept in
/// <paramref name="keptIn"/>, and `backupd catalog rebuild --repository DIR` adds it in any case.
/// </summary>
public sealed class PointNotRecordedException(string pointId, string repository, string? keptIn, Exception inner)
    : Exception($"restore point {pointId} is durable in {repository}, but the catalog could not record it ({inner.Message}); " +
        (keptIn is null ? "" : $"the record is kept in {keptIn} and written at the next daemon start, backup of this domain or `backupd recover` once the catalog is back, or ") +
        $"run `backupd catalog rebuild --repository {repository}`", inner)
{
    public string PointId { get; } = pointId;
}

/// <summary>
/// Runs one backup of one domain with the catalog's guarantees (for <see cref="BackupService"/>): the domain's advisory lock is held
/// for the whole run (a second attempt gets <see cref="DomainBusyException"/> naming the holder and
/// changes nothing), the run and its progress are recorded, and the restore point row is written
/// only after the workflow returned a committed (durable) repository point, in the same transaction
/// that marks the run succeeded. If the catalog is unreachable when the run ends, its final record is
/// retried for <see cref="CatalogRetry"/> and otherwise left in <see cref="Pending"/> for the next start,
/// run or `recover` (<see cref="RunRecordFinisher"/>). 
/// </summary>
public sealed class BackupRunner(CatalogStore catalog, IDomainBackup workflow, ILogger<BackupRunner>? logger = null)
{
    public static readonly TimeSpan DefaultCatalogRetry = TimeSpan.FromMinutes(2);

    private readonly ILogger _log = (ILogger?)logger ?? NullLogger.Instance;

    /// <summary>How long the end of a run retries an unreachable catalog before leaving its record pending.</summary>
    public TimeSpan CatalogRetry { get; init; } = DefaultCatalogRetry;

    /// <summary>Where a final record waits when the catalog stays away (STATE/catalog-pending); null keeps none.</summary>
    public PendingRunRecords? Pending { get; init; }

    public async Task<BackupRun> RunAsync(string nameOrUuid, RunOrigin origin, IProgress<RunProgress>? observer, CancellationToken ct)
    {
        var domain = workflow.Resolve(nameOrUuid) ?? throw new DomainNotFoundException(nameOrUuid);
        var self = ProcessIdentity.Current;
        await using var domainLock = await CatalogDomainLock.AcquireAsync(catalog.ConnectionString, domain.Uuid, domain.Name, self, ct);
        // Records an earlier run of this domain could not write (its process lost the catalog and ended) go in first.
        if (Pending is not null) await RunRecordFinisher.FinishLeftOversAsync(catalog, Pending, self, domain.Uuid, _log, ct);
        var runId = await catalog.StartRunAsync(new RunStart(domain.Uuid, domain.Name, origin.Trigger, origin.RequestedBy, origin.PolicyName), self, ct);
        await domainLock.SetRunAsync(runId, ct);
        _log.RunStarted(runId, domain.Name, domain.Uuid, origin.RequestedBy, origin.Trigger);

        DomainBackupOutcome outcome;
        var recorder = new RunProgressRecorder(catalog, runId, observer);
        PendingRunRecord Final(string state, string step, string? error, RunStats stats, RestorePointRecord? point) =>
            new(runId, domain.Uuid, domain.Name, state, step, recorder.Latest?.Bytes ?? 0, recorder.Latest?.TotalBytes, error, stats, point, self.Host, self.Pid, self.StartToken);
        try
        {
            recorder.Report(new RunProgress("starting"));
            outcome = await workflow.BackupAsync(domain, runId, recorder, ct);
        }
        catch (BackupRefusedException e) when (e.Kind == RefusalKind.Busy)
        {
            // Another backupd process on this host holds the domain (a --no-catalog run has no catalog lock):
            // a refusal like DomainBusyException, so nothing of this attempt stays in the catalog.
            await recorder.DisposeAsync();
            try { await catalog.DiscardRunAsync(runId, CancellationToken.None); }
            catch (Exception dbError) when (RunRecordFinisher.IsOutage(dbError)) { _log.RefusedRunNotRemoved(dbError, runId); }
            _log.RunRefusedBusy(runId, e.Message);
            throw;
        }
        catch (BackupRefusedException e)
        {
            // Refused before the domain was touched (nothing was done): no run to show, as for a busy domain lock.
            await recorder.DisposeAsync();
            try { await catalog.DiscardRunAsync(runId, CancellationToken.None); }
            catch (Npgsql.NpgsqlException dbError) { _log.RefusedRunNotRemoved(dbError, runId); }
            _log.RunRefused(runId, domain.Name, e.Message);
            throw;
        }
        catch (Exception e)
        {
            await recorder.DisposeAsync();
            // Record the failure even when cancelled: the run must not stay `running`.
            var state = BackupFailedException.IsInterruption(e) ? RunStates.Interrupted : RunStates.Failed;
            var step = recorder.Latest?.Step ?? "starting";
            if (await RunRecordFinisher.RecordAsync(catalog, Pending, Final(state, step, $"{step}: {e.Message}", new RunStats(), null), CatalogRetry, _log) is { } dbError)
                _log.RunEndNotRecorded(dbError, runId);
            _log.RunFailed(e, runId, domain.Name, state, step);
            throw;
        }
        await recorder.DisposeAsync();
        // Best effort: the final percentage for `status`; the outcome below is what must reach the catalog.
        try
        {
            using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(5));
            await recorder.FlushAsync(timeout.Token);
        }
        catch (Exception e) when (RunRecordFinisher.IsOutage(e) || e is OperationCanceledException) { }

        var record = RepositoryRecords.ToRecord(outcome.Point, outcome.RepositoryDirectory, outcome.Stats.Consistency);
        if (record is null || record.DomainUuid != domain.Uuid)
        {
            var wrong = new InvalidOperationException($"workflow returned a restore point of group '{outcome.Point.GroupId}' for a run of domain {domain.Uuid}");
            await RunRecordFinisher.RecordAsync(catalog, Pending, Final(RunStates.Failed, "commit", wrong.Message, outcome.Stats, null), CatalogRetry, _log);
            throw wrong;
        }
        // The repository commit has returned: the point is durable. Only now does the catalog show it.
        Exception? notRecorded;
        try { notRecorded = await RunRecordFinisher.RecordAsync(catalog, Pending, Final(RunStates.Succeeded, "done", null, outcome.Stats, record), CatalogRetry, _log); }
        catch (CatalogException e) { notRecorded = e; }
        if (notRecorded is not null)
            throw new PointNotRecordedException(record.PointId, record.Repository, notRecorded is CatalogException ? null : Pending?.Directory, notRecorded);
        _log.PointRecorded(runId, record.PointId, domain.Name);
        return new BackupRun(runId, domain, record, outcome.Stats, outcome.Workflow);
    }
}
