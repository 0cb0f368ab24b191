using Backupd.Storage.Catalog;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;

namespace Backupd.Daemon.Runs;

/// <summary>What became of one backup request.</summary>
public sealed record BackupRunResult(long RunId, BackupTarget Target, RestorePointRecord Point, RunStats Stats);

/// <summary>Who asked for a backup: "cli" or "schedule", the user or policy, and the policy name if any.</summary>
public sealed record BackupRequest(string Domain, string Trigger, string RequestedBy, string? PolicyName = null);

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
/// Runs one backup of one domain with the catalog's guarantees: the domain's advisory lock is held
/// for the whole run (a second attempt gets <see cref="DomainBusyException"/> naming the holder and
/// changes nothing), the run and its progress are recorded, and the restore point row is written
/// only after the workflow returned a committed (durable) repository point, in the same transaction
/// that marks the run succeeded. If the catalog is unreachable when the run ends, its final record is
/// retried for <see cref="CatalogRetry"/> and otherwise left in <see cref="Pending"/> for the next start,
/// run or `recover` (<see cref="RunRecordFinisher"/>). Called by the scheduler and by `backupd backup --domain`.
/// </summary>
public sealed class BackupRunner(CatalogStore catalog, IDomainBackup workflow, ILogger<BackupRunner>? logger = null)
{
    public static readonly TimeSpan DefaultCatalogRetry = TimeSpan.FromMinutes(2);

    private readonly ILogger _log = (ILogger?)logger ?? NullLogger.Instance;

    /// <summary>How long the end of a run retries an unreachable catalog before leaving its record pending.</summary>
    public TimeSpan CatalogRetry { get; init; } = DefaultCatalogRetry;

    /// <summary>Where a final record waits when the catalog stays away (STATE/catalog-pending); null keeps none.</summary>
    public PendingRunRecords? Pending { get; init; }

    /// <summary>Runs after a successful backup while the domain's catalog lock is still held (a policy's `chains:` maintenance).</summary>
    public Func<BackupRunResult, CancellationToken, Task>? AfterBackupWhileLocked { get; init; }

    public async Task<BackupRunResult> RunAsync(BackupRequest request, IProgress<RunProgress>? observer, CancellationToken ct)
    {
        var target = workflow.Resolve(request.Domain) ?? throw new DomainNotFoundException(request.Domain);
        var self = ProcessIdentity.Current;
        await using var domainLock = await DomainLock.AcquireAsync(catalog.ConnectionString, target.Uuid, target.Name, self, ct);
        // Records an earlier run of this domain could not write (its process lost the catalog and ended) go in first.
        if (Pending is not null) await RunRecordFinisher.FinishLeftOversAsync(catalog, Pending, self, target.Uuid, _log, ct);
        var runId = await catalog.StartRunAsync(new RunStart(target.Uuid, target.Name, request.Trigger, request.RequestedBy, request.PolicyName), self, ct);
        await domainLock.SetRunAsync(runId, ct);
        _log.LogInformation("run {RunId}: backing up {Domain} ({Uuid}) for {Who} via {Trigger}", runId, target.Name, target.Uuid, request.RequestedBy, request.Trigger);

        DomainBackupOutcome outcome;
        var recorder = new RunProgressRecorder(catalog, runId, observer);
        PendingRunRecord Final(string state, string step, string? error, RunStats stats, RestorePointRecord? point) =>
            new(runId, target.Uuid, target.Name, state, step, recorder.Latest?.Bytes ?? 0, recorder.Latest?.TotalBytes, error, stats, point, self.Host, self.Pid, self.StartToken);
        try
        {
            recorder.Report(new RunProgress("starting"));
            outcome = await workflow.BackupAsync(target, runId, recorder, ct);
        }
        catch (Workflow.BackupRefusedException e) when (e.Kind == Workflow.RefusalKind.Busy)
        {
            // Another backupd process on this host holds the domain (a --no-catalog run has no catalog lock):
            // a refusal like DomainBusyException, so nothing of this attempt stays in the catalog.
            await recorder.DisposeAsync();
            try { await catalog.DiscardRunAsync(runId, CancellationToken.None); }
            catch (Exception dbError) when (RunRecordFinisher.IsOutage(dbError)) { _log.LogError(dbError, "run {RunId}: could not remove the refused run from the catalog", runId); }
            _log.LogWarning("run {RunId}: refused, nothing done: {Message}", runId, e.Message);
            throw;
        }
        catch (Workflow.BackupRefusedException e)
        {
            // Refused before the domain was touched (nothing was done): no run to show, as for a busy domain lock.
            await recorder.DisposeAsync();
            try { await catalog.DiscardRunAsync(runId, CancellationToken.None); }
            catch (Npgsql.NpgsqlException dbError) { _log.LogError(dbError, "run {RunId}: could not remove the refused run from the catalog", runId); }
            _log.LogWarning("run {RunId}: backup of {Domain} refused, nothing was done: {Reason}", runId, target.Name, e.Message);
            throw;
        }
        catch (Exception e)
        {
            await recorder.DisposeAsync();
            // Record the failure even when cancelled: the run must not stay `running`.
            var state = BackupFailedException.IsInterruption(e) ? RunStates.Interrupted : RunStates.Failed;
            var step = recorder.Latest?.Step ?? "starting";
            if (await RunRecordFinisher.RecordAsync(catalog, Pending, Final(state, step, $"{step}: {e.Message}", new RunStats(), null), CatalogRetry, _log) is { } dbError)
                _log.LogError(dbError, "run {RunId}: could not record its end in the catalog", runId);
            _log.LogError(e, "run {RunId}: backup of {Domain} {State} at step {Step}", runId, target.Name, state, step);
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
        if (record is null || record.DomainUuid != target.Uuid)
        {
            var wrong = new InvalidOperationException($"workflow returned a restore point of group '{outcome.Point.GroupId}' for a run of domain {target.Uuid}");
            await RunRecordFinisher.RecordAsync(catalog, Pending, Final(RunStates.Failed, "commit", wrong.Message, outcome.Stats, null), CatalogRetry, _log);
            throw wrong;
        }
        // The repository commit has returned: the point is durable. Only now does the catalog show it.
        Exception? notRecorded;
        try { notRecorded = await RunRecordFinisher.RecordAsync(catalog, Pending, Final(RunStates.Succeeded, "done", null, outcome.Stats, record), CatalogRetry, _log); }
        catch (CatalogException e) { notRecorded = e; }
        if (notRecorded is not null)
            throw new PointNotRecordedException(record.PointId, record.Repository, notRecorded is CatalogException ? null : Pending?.Directory, notRecorded);
        _log.LogInformation("run {RunId}: restore point {Point} of {Domain} recorded", runId, record.PointId, target.Name);
        var done = new BackupRunResult(runId, target, record, outcome.Stats);
        if (AfterBackupWhileLocked is { } after)
        {
            // Still holding the domain lock, so nothing else starts on the domain in between; the backup stands whatever happens here.
            try { await after(done, ct); }
            catch (Exception e) when (e is not OperationCanceledException) { _log.LogError(e, "run {RunId}: the post-backup step for {Domain} failed", runId, target.Name); }
        }
        return done;
    }
}
