using Dapper;

namespace Backupd.Storage.Catalog;

/// <summary>Runs: start, progress, the end states, interruption of runs whose process died, and the status view.</summary>
public sealed partial class CatalogStore
{
    /// <summary>
    /// Records a new run in state running. Call only while holding the domain's <see cref="CatalogDomainLock"/>:
    /// any other `running` row of the domain then belongs to a dead process and is marked interrupted here.
    /// </summary>
    public async Task<long> StartRunAsync(RunStart start, ProcessIdentity self, CancellationToken ct)
    {
        await using var connection = await OpenAsync(ct);
        await using var tx = await connection.BeginTransactionAsync(ct);
        var hostId = await UpsertHostAsync(connection, tx, self.Host, ct);
        await UpsertDomainAsync(connection, tx, start.DomainUuid, start.DomainName, hostId, ct);
        var policyId = start.PolicyName is null ? (long?)null : await UpsertPolicyAsync(connection, tx, start.PolicyName, ct);
        await connection.ExecuteAsync(new CommandDefinition(
            $"""
            update runs set state = '{RunStates.Interrupted}', finished_at = now(),
                   error = coalesce(error, 'the process running it ended before it finished (found by a later run holding the domain lock)'
                     || case when step = 'commit' then '; it died while merging the overlays back, after its repository commit: `backupd catalog rebuild --repository DIR` records its restore point' else '' end)
            where domain_uuid = @uuid and state = '{RunStates.Running}'
            """, new { uuid = start.DomainUuid }, tx, cancellationToken: ct));
        var id = await connection.ExecuteScalarAsync<long>(new CommandDefinition(
            """
            insert into runs (domain_uuid, domain_name, policy_id, trigger, requested_by, host_id, pid, process_start, kind)
            values (@DomainUuid, @DomainName, @policyId, @Trigger, @RequestedBy, @hostId, @pid, @processStart, @Kind)
            returning id
            """,
            new { start.DomainUuid, start.DomainName, policyId, start.Trigger, start.RequestedBy, hostId, pid = self.Pid, processStart = self.StartToken, start.Kind },
            tx, cancellationToken: ct));
        await tx.CommitAsync(ct);
        return id;
    }

    /// <summary>Updates the step reached and the byte progress of a running run.</summary>
    public async Task UpdateProgressAsync(long runId, string step, long progressBytes, long? progressTotal, CancellationToken ct)
    {
        await using var connection = await OpenAsync(ct);
        await connection.ExecuteAsync(new CommandDefinition(
            $"update runs set step = @step, progress_bytes = @progressBytes, progress_total = @progressTotal where id = @runId and state = '{RunStates.Running}'",
            new { runId, step, progressBytes, progressTotal }, cancellationToken: ct));
    }

    /// <summary>
    /// Marks the run succeeded and records its restore point, in one transaction. Call only after the
    /// repository's commit returned: the point is durable there before it becomes visible here.
    /// </summary>
    public async Task CompleteRunAsync(long runId, RunStats stats, RestorePointRecord point, CancellationToken ct)
    {
        await using var connection = await OpenAsync(ct);
        await using var tx = await connection.BeginTransactionAsync(ct);
        var updated = await connection.ExecuteAsync(new CommandDefinition(
            $"""
            update runs set state = '{RunStates.Succeeded}', finished_at = now(), step = 'done', error = null,
                   progress_bytes = greatest(progress_bytes, coalesce(progress_total, 0)),
                   bytes_read = @BytesRead, bytes_written = @BytesWritten, copy_time = @CopyTime,
                   overlay_lifetime = @OverlayLifetime, commit_time = @CommitTime, consistency = @Consistency
            where id = @runId
            """,
            new { runId, stats.BytesRead, stats.BytesWritten, stats.CopyTime, stats.OverlayLifetime, stats.CommitTime, stats.Consistency },
            tx, cancellationToken: ct));
        if (updated != 1) throw new CatalogException($"run {runId} does not exist in the catalog");
        await UpsertDomainAsync(connection, tx, point.DomainUuid, point.DomainName, null, ct);
        // Idempotent: a retry after a commit whose answer was lost, or a point that `catalog rebuild` added meanwhile, only links the run.
        var linked = await connection.ExecuteAsync(new CommandDefinition(
            "update restore_points set run_id = coalesce(run_id, @runId) where id = @PointId", new { runId, point.PointId }, tx, cancellationToken: ct));
        if (linked == 0) await InsertPointAsync(connection, tx, point, runId, ct);
        await tx.CommitAsync(ct);
    }

    /// <summary>
    /// Removes a run that was refused before it touched the domain (another process holds the domain, or its repository
    /// group stayed busy with a restore): a refusal leaves no row. Only a still-running run without a restore point goes.
    /// </summary>
    public async Task DiscardRunAsync(long runId, CancellationToken ct)
    {
        await using var connection = await OpenAsync(ct);
        await connection.ExecuteAsync(new CommandDefinition(
            $"delete from runs r where r.id = @runId and r.state = '{RunStates.Running}' and not exists (select 1 from restore_points p where p.run_id = r.id)",
            new { runId }, cancellationToken: ct));
    }

    /// <summary>Marks the run failed (or interrupted) with its error; it gets no restore point.</summary>
    public async Task FailRunAsync(long runId, string state, string error, RunStats? stats, CancellationToken ct)
    {
        if (state is not (RunStates.Failed or RunStates.Interrupted))
            throw new ArgumentException($"a run ends as '{RunStates.Failed}' or '{RunStates.Interrupted}', not '{state}'", nameof(state));
        stats ??= new RunStats();
        await using var connection = await OpenAsync(ct);
        await connection.ExecuteAsync(new CommandDefinition(
            $"""
            update runs set state = @state, finished_at = now(), error = @error,
                   bytes_read = @BytesRead, bytes_written = @BytesWritten, copy_time = @CopyTime,
                   overlay_lifetime = @OverlayLifetime, commit_time = @CommitTime, consistency = @Consistency
            where id = @runId and state = '{RunStates.Running}'
            """,
            new { runId, state, error, stats.BytesRead, stats.BytesWritten, stats.CopyTime, stats.OverlayLifetime, stats.CommitTime, stats.Consistency },
            cancellationToken: ct));
    }

    /// <summary>
    /// Start-up recovery: every `running` run whose process is gone becomes `interrupted`. A run is
    /// gone if it was started on this host and its pid + start token no longer name a live process,
    /// or (another host) if nobody holds its domain lock, which a live run does while it can reach the catalog.
    /// </summary>
    public Task<IReadOnlyList<long>> MarkInterruptedRunsAsync(ProcessIdentity self, CancellationToken ct) => MarkInterruptedRunsAsync(self, null, ct);

    /// <summary><see cref="MarkInterruptedRunsAsync(ProcessIdentity, CancellationToken)"/> for the runs of one domain only (`recover --domain`), or all when null.</summary>
    public async Task<IReadOnlyList<long>> MarkInterruptedRunsAsync(ProcessIdentity self, Guid? onlyDomain, CancellationToken ct)
    {
        await using var connection = await OpenAsync(ct);
        var running = await connection.QueryAsync<(long Id, Guid DomainUuid, string Host, int Pid, string ProcessStart, string Step)>(new CommandDefinition(
            $"select r.id, r.domain_uuid, h.name, r.pid, r.process_start, r.step from runs r join hosts h on h.id = r.host_id where r.state = '{RunStates.Running}' and (@onlyDomain::uuid is null or r.domain_uuid = @onlyDomain)",
            new { onlyDomain }, cancellationToken: ct));
        var marked = new List<long>();
        foreach (var run in running)
        {
            string? reason = null;
            if (run.Host == self.Host)
            {
                // On this host the process itself is the truth: alive, it is still running or retrying its end after
                // losing the catalog (and with it the lock), and it writes its own final state.
                if (ProcessIdentity.IsAliveHere(run.Pid, run.ProcessStart)) continue;
                reason = $"process {run.Pid} on {run.Host} no longer exists";
            }
            else if (!await CatalogDomainLock.IsHeldByAnyoneAsync(connection, run.DomainUuid, ct))
                reason = $"no process holds the domain lock any more (was {run.Host} pid {run.Pid})";
            if (reason is null) continue;
            // The repository commit comes before the overlay commit: a run that died there may have a durable point.
            if (run.Step == "commit")
                reason += "; it died while merging the overlays back, after its repository commit: `backupd catalog rebuild --repository DIR` records its restore point";
            var n = await connection.ExecuteAsync(new CommandDefinition(
                $"update runs set state = '{RunStates.Interrupted}', finished_at = now(), error = coalesce(error, @reason) where id = @id and state = '{RunStates.Running}'",
                new { id = run.Id, reason = "interrupted: " + reason }, cancellationToken: ct));
            if (n == 1) marked.Add(run.Id);
        }
        return marked;
    }

    public async Task<RunRow?> GetRunAsync(long runId, CancellationToken ct)
    {
        await using var connection = await OpenAsync(ct);
        return await connection.QueryFirstOrDefaultAsync<RunRow>(new CommandDefinition(RunSelect + " where r.id = @runId", new { runId }, cancellationToken: ct));
    }

    /// <summary>Runs of one domain (or all), newest first.</summary>
    public async Task<IReadOnlyList<RunRow>> ListRunsAsync(Guid? domainUuid, int limit, CancellationToken ct)
    {
        await using var connection = await OpenAsync(ct);
        return (await connection.QueryAsync<RunRow>(new CommandDefinition(
            RunSelect + " where (@domainUuid::uuid is null or r.domain_uuid = @domainUuid) order by r.started_at desc, r.id desc limit @limit",
            new { domainUuid, limit }, cancellationToken: ct))).AsList();
    }

    public async Task<CatalogStatus> GetStatusAsync(CancellationToken ct)
    {
        await using var connection = await OpenAsync(ct);
        var running = (await connection.QueryAsync<RunRow>(new CommandDefinition(
            RunSelect + $" where r.state = '{RunStates.Running}' order by r.started_at", cancellationToken: ct))).AsList();
        var last = (await connection.QueryAsync<RunRow>(new CommandDefinition(
            $"select * from (select distinct on (r.domain_uuid) {RunColumns} {RunFrom} where r.state <> '{RunStates.Running}' order by r.domain_uuid, r.started_at desc, r.id desc) x order by domain_name",
            cancellationToken: ct))).AsList();
        return new CatalogStatus(running, last);
    }

    private const string RunColumns =
        """
        r.id, r.domain_uuid, r.domain_name, p.name as policy_name, r.trigger, r.requested_by, h.name as host, r.pid, r.process_start,
        r.started_at, r.finished_at, r.state, r.step, r.progress_bytes, r.progress_total, r.bytes_read, r.bytes_written,
        r.copy_time, r.overlay_lifetime, r.commit_time, r.consistency, r.error, rp.id as restore_point_id, r.kind, r.point_id, r.rto
        """;

    private const string RunFrom =
        "from runs r join hosts h on h.id = r.host_id left join policies p on p.id = r.policy_id left join restore_points rp on rp.run_id = r.id";

    private const string RunSelect = "select " + RunColumns + " " + RunFrom;
}
