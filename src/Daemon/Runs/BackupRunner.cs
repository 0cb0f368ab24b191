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
/// The repository holds a new restore point but the catalog could not record it. The data is safe;
/// `backupd catalog rebuild --repository DIR` brings the catalog up to date.
/// </summary>
public sealed class PointNotRecordedException(string pointId, string repository, Exception inner)
    : Exception($"restore point {pointId} is durable in {repository}, but the catalog could not record it ({inner.Message}); run `backupd catalog rebuild --repository {repository}`", inner)
{
    public string PointId { get; } = pointId;
}

/// <summary>
/// Runs one backup of one domain with the catalog's guarantees: the domain's advisory lock is held
/// for the whole run (a second attempt gets <see cref="DomainBusyException"/> naming the holder and
/// changes nothing), the run and its progress are recorded, and the restore point row is written
/// only after the workflow returned a committed (durable) repository point, in the same transaction
/// that marks the run succeeded. Called by the scheduler and by `backupd backup --domain`.
/// </summary>
public sealed class BackupRunner(CatalogStore catalog, IDomainBackup workflow, ILogger<BackupRunner>? logger = null)
{
    private readonly ILogger _log = (ILogger?)logger ?? NullLogger.Instance;

    public async Task<BackupRunResult> RunAsync(BackupRequest request, IProgress<RunProgress>? observer, CancellationToken ct)
    {
        var target = workflow.Resolve(request.Domain) ?? throw new DomainNotFoundException(request.Domain);
        var self = ProcessIdentity.Current;
        await using var domainLock = await DomainLock.AcquireAsync(catalog.ConnectionString, target.Uuid, target.Name, self, ct);
        var runId = await catalog.StartRunAsync(new RunStart(target.Uuid, target.Name, request.Trigger, request.RequestedBy, request.PolicyName), self, ct);
        await domainLock.SetRunAsync(runId, ct);
        _log.LogInformation("run {RunId}: backing up {Domain} ({Uuid}) for {Who} via {Trigger}", runId, target.Name, target.Uuid, request.RequestedBy, request.Trigger);

        DomainBackupOutcome outcome;
        var recorder = new RunProgressRecorder(catalog, runId, observer);
        try
        {
            recorder.Report(new RunProgress("starting"));
            outcome = await workflow.BackupAsync(target, runId, recorder, ct);
            await recorder.DisposeAsync();
            await recorder.FlushAsync(CancellationToken.None);
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
            try
            {
                await recorder.FlushAsync(CancellationToken.None);
                await catalog.FailRunAsync(runId, state, $"{step}: {e.Message}", null, CancellationToken.None);
            }
            catch (Npgsql.NpgsqlException dbError)
            {
                _log.LogError(dbError, "run {RunId}: could not record its failure in the catalog", runId);
            }
            _log.LogError(e, "run {RunId}: backup of {Domain} {State} at step {Step}", runId, target.Name, state, step);
            throw;
        }

        var record = RepositoryRecords.ToRecord(outcome.Point, outcome.RepositoryDirectory, outcome.Stats.Consistency);
        if (record is null || record.DomainUuid != target.Uuid)
            throw new InvalidOperationException($"workflow returned a restore point of group '{outcome.Point.GroupId}' for a run of domain {target.Uuid}");
        try
        {
            // The repository commit has returned: the point is durable. Only now does the catalog show it.
            await catalog.CompleteRunAsync(runId, outcome.Stats, record, CancellationToken.None);
        }
        catch (Exception e) when (e is Npgsql.NpgsqlException or CatalogException)
        {
            try { await catalog.FailRunAsync(runId, RunStates.Failed, $"recording restore point {outcome.Point.PointId}: {e.Message}", outcome.Stats, CancellationToken.None); }
            catch (Npgsql.NpgsqlException) { /* the catalog is unreachable; the exception below says what to do */ }
            throw new PointNotRecordedException(record.PointId, record.Repository, e);
        }
        _log.LogInformation("run {RunId}: restore point {Point} of {Domain} recorded", runId, record.PointId, target.Name);
        return new BackupRunResult(runId, target, record, outcome.Stats);
    }
}
