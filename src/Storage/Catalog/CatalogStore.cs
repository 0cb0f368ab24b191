using Dapper;
using Npgsql;

namespace Backupd.Storage.Catalog;

/// <summary>
/// Reads and writes the catalog: runs, restore points, events. Every statement is parameterised;
/// names and paths are stored exactly as given. Methods open a pooled connection each; the
/// multi-row writes run in one transaction.
/// </summary>
public sealed partial class CatalogStore : IAsyncDisposable
{
    private readonly NpgsqlDataSource _dataSource;

    static CatalogStore() => DefaultTypeMap.MatchNamesWithUnderscores = true;

    public CatalogStore(string connectionString)
    {
        ConnectionString = connectionString;
        _dataSource = NpgsqlDataSource.Create(connectionString);
    }

    /// <summary>For <see cref="DomainLock"/>, which needs its own unpooled session.</summary>
    public string ConnectionString { get; }

    public ValueTask<NpgsqlConnection> OpenAsync(CancellationToken ct) => _dataSource.OpenConnectionAsync(ct);

    public ValueTask DisposeAsync() => _dataSource.DisposeAsync();

    // ---- runs -------------------------------------------------------------------------------

    /// <summary>
    /// Records a new run in state running. Call only while holding the domain's <see cref="DomainLock"/>:
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
            """
            update runs set state = 'interrupted', finished_at = now(),
                   error = coalesce(error, 'the process running it ended before it finished (found by a later run holding the domain lock)'
                     || case when step = 'commit' then '; it died while merging the overlays back, after its repository commit: `backupd catalog rebuild --repository DIR` records its restore point' else '' end)
            where domain_uuid = @uuid and state = 'running'
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
            "update runs set step = @step, progress_bytes = @progressBytes, progress_total = @progressTotal where id = @runId and state = 'running'",
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
            """
            update runs set state = 'succeeded', finished_at = now(), step = 'done', error = null,
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
            "delete from runs r where r.id = @runId and r.state = 'running' and not exists (select 1 from restore_points p where p.run_id = r.id)",
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
            """
            update runs set state = @state, finished_at = now(), error = @error,
                   bytes_read = @BytesRead, bytes_written = @BytesWritten, copy_time = @CopyTime,
                   overlay_lifetime = @OverlayLifetime, commit_time = @CommitTime, consistency = @Consistency
            where id = @runId and state = 'running'
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
            "select r.id, r.domain_uuid, h.name, r.pid, r.process_start, r.step from runs r join hosts h on h.id = r.host_id where r.state = 'running' and (@onlyDomain::uuid is null or r.domain_uuid = @onlyDomain)",
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
            else if (!await DomainLock.IsHeldByAnyoneAsync(connection, run.DomainUuid, ct))
                reason = $"no process holds the domain lock any more (was {run.Host} pid {run.Pid})";
            if (reason is null) continue;
            // The repository commit comes before the overlay commit: a run that died there may have a durable point.
            if (run.Step == "commit")
                reason += "; it died while merging the overlays back, after its repository commit: `backupd catalog rebuild --repository DIR` records its restore point";
            var n = await connection.ExecuteAsync(new CommandDefinition(
                "update runs set state = 'interrupted', finished_at = now(), error = coalesce(error, @reason) where id = @id and state = 'running'",
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
            RunSelect + " where r.state = 'running' order by r.started_at", cancellationToken: ct))).AsList();
        var last = (await connection.QueryAsync<RunRow>(new CommandDefinition(
            $"select * from (select distinct on (r.domain_uuid) {RunColumns} {RunFrom} where r.state <> 'running' order by r.domain_uuid, r.started_at desc, r.id desc) x order by domain_name",
            cancellationToken: ct))).AsList();
        return new CatalogStatus(running, last);
    }

    private const string RunColumns =
        """
        r.id, r.domain_uuid, r.domain_name, p.name as policy_name, r.trigger, r.requested_by, h.name as host, r.pid, r.process_start,
        r.started_at, r.finished_at, r.state, r.step, r.progress_bytes, r.progress_total, r.bytes_read, r.bytes_written,
        r.copy_time, r.overlay_lifetime, r.commit_time, r.consistency, r.error, rp.id as restore_point_id
        """;

    private const string RunFrom =
        "from runs r join hosts h on h.id = r.host_id left join policies p on p.id = r.policy_id left join restore_points rp on rp.run_id = r.id";

    private const string RunSelect = "select " + RunColumns + " " + RunFrom;

    // ---- domains and restore points -------------------------------------------------------------

    /// <summary>Domains matching a UUID, or a current name, or (if none) a name a restore point was taken under.</summary>
    public async Task<IReadOnlyList<DomainRow>> FindDomainsAsync(string nameOrUuid, CancellationToken ct)
    {
        await using var connection = await OpenAsync(ct);
        const string select = "select d.uuid, d.name, h.name as host, d.first_seen, d.last_seen from domains d left join hosts h on h.id = d.host_id";
        if (Guid.TryParse(nameOrUuid, out var uuid))
            return (await connection.QueryAsync<DomainRow>(new CommandDefinition(select + " where d.uuid = @uuid", new { uuid }, cancellationToken: ct))).AsList();
        var byName = (await connection.QueryAsync<DomainRow>(new CommandDefinition(select + " where d.name = @name order by d.last_seen desc", new { name = nameOrUuid }, cancellationToken: ct))).AsList();
        if (byName.Count > 0) return byName;
        return (await connection.QueryAsync<DomainRow>(new CommandDefinition(
            select + " where d.uuid in (select domain_uuid from restore_points where domain_name = @name) order by d.last_seen desc",
            new { name = nameOrUuid }, cancellationToken: ct))).AsList();
    }

    /// <summary>Restore points, newest first, optionally of one domain and/or not older than <paramref name="since"/>.</summary>
    public async Task<IReadOnlyList<RestorePointSummary>> ListPointsAsync(Guid? domainUuid, DateTimeOffset? since, CancellationToken ct)
    {
        await using var connection = await OpenAsync(ct);
        return (await connection.QueryAsync<RestorePointSummary>(new CommandDefinition(
            PointSelect + " where (@domainUuid::uuid is null or rp.domain_uuid = @domainUuid) and (@since::timestamptz is null or rp.created_at >= @since) "
            + PointGroup + " order by rp.created_at desc, rp.id desc",
            new { domainUuid, since = since?.UtcDateTime }, cancellationToken: ct))).AsList();
    }

    /// <summary>The newest point of the domain taken at or before <paramref name="at"/>, or null.</summary>
    public async Task<RestorePointSummary?> FindPointAtAsync(Guid domainUuid, DateTimeOffset at, CancellationToken ct)
    {
        await using var connection = await OpenAsync(ct);
        return await connection.QueryFirstOrDefaultAsync<RestorePointSummary>(new CommandDefinition(
            PointSelect + " where rp.domain_uuid = @domainUuid and rp.created_at <= @at " + PointGroup + " order by rp.created_at desc, rp.id desc limit 1",
            new { domainUuid, at = at.UtcDateTime }, cancellationToken: ct));
    }

    public async Task<RestorePointDetail?> GetPointAsync(string pointId, CancellationToken ct)
    {
        await using var connection = await OpenAsync(ct);
        var point = await connection.QueryFirstOrDefaultAsync<RestorePointSummary>(new CommandDefinition(
            PointSelect + " where rp.id = @pointId " + PointGroup, new { pointId }, cancellationToken: ct));
        if (point is null) return null;
        var xml = await connection.ExecuteScalarAsync<string?>(new CommandDefinition(
            "select domain_xml from restore_points where id = @pointId", new { pointId }, cancellationToken: ct));
        var files = (await connection.QueryAsync<RestorePointFileRow>(new CommandDefinition(
            """
            select file_key, disk, depth, source_path, format, backing_file, virtual_size, file_size, digest, bytes_read, bytes_written
            from restore_point_files where point_id = @pointId order by disk, depth
            """, new { pointId }, cancellationToken: ct))).AsList();
        var run = point.RunId is { } runId
            ? await connection.QueryFirstOrDefaultAsync<RunRow>(new CommandDefinition(RunSelect + " where r.id = @runId", new { runId }, cancellationToken: ct))
            : null;
        var verify = await connection.QueryFirstOrDefaultAsync<EventRow>(new CommandDefinition(
            EventSelect + " where e.kind = 'verify' and e.point_id = @pointId order by e.at desc, e.id desc limit 1", new { pointId }, cancellationToken: ct));
        return new RestorePointDetail(point, xml, files, run, verify);
    }

    /// <summary>Removes a restore point's rows (retention, after the repository deleted it).</summary>
    public async Task<bool> DeletePointAsync(string pointId, CancellationToken ct)
    {
        await using var connection = await OpenAsync(ct);
        return await connection.ExecuteAsync(new CommandDefinition("delete from restore_points where id = @pointId", new { pointId }, cancellationToken: ct)) == 1;
    }

    private const string PointSelect =
        """
        select rp.id, rp.domain_uuid, rp.domain_name, rp.created_at, rp.repository, rp.run_id, rp.consistency,
               count(distinct f.disk)::int as disks, count(f.file_key)::int as files,
               coalesce(sum(f.file_size), 0)::bigint as total_file_size,
               coalesce(sum(f.virtual_size) filter (where f.depth = 0), 0)::bigint as total_virtual_size
        from restore_points rp left join restore_point_files f on f.point_id = rp.id
        """;

    private const string PointGroup = " group by rp.id ";

    // ---- events -------------------------------------------------------------------------------

    /// <summary>Records a verify, retention or rebuild outcome.</summary>
    public async Task<long> RecordEventAsync(string kind, Guid? domainUuid, string? pointId, bool ok, string detail, ProcessIdentity self, CancellationToken ct)
    {
        await using var connection = await OpenAsync(ct);
        await using var tx = await connection.BeginTransactionAsync(ct);
        var hostId = await UpsertHostAsync(connection, tx, self.Host, ct);
        // A domain the catalog does not know (file-level verify) is recorded without the reference.
        var knownDomain = domainUuid is { } d && await connection.ExecuteScalarAsync<bool>(new CommandDefinition(
            "select exists (select 1 from domains where uuid = @d)", new { d }, tx, cancellationToken: ct));
        var id = await connection.ExecuteScalarAsync<long>(new CommandDefinition(
            "insert into events (kind, domain_uuid, point_id, host_id, ok, detail) values (@kind, @domainUuid, @pointId, @hostId, @ok, @detail) returning id",
            new { kind, domainUuid = knownDomain ? domainUuid : null, pointId, hostId, ok, detail }, tx, cancellationToken: ct));
        await tx.CommitAsync(ct);
        return id;
    }

    public async Task<IReadOnlyList<EventRow>> ListEventsAsync(string? kind, string? pointId, int limit, CancellationToken ct)
    {
        await using var connection = await OpenAsync(ct);
        return (await connection.QueryAsync<EventRow>(new CommandDefinition(
            EventSelect + " where (@kind::text is null or e.kind = @kind) and (@pointId::text is null or e.point_id = @pointId) order by e.at desc, e.id desc limit @limit",
            new { kind, pointId, limit }, cancellationToken: ct))).AsList();
    }

    private const string EventSelect =
        "select e.id, e.kind, e.at, e.domain_uuid, e.point_id, h.name as host, e.ok, e.detail from events e left join hosts h on h.id = e.host_id";

    // ---- rebuild ------------------------------------------------------------------------------

    /// <summary>What <see cref="RebuildAsync"/> changed.</summary>
    public sealed record RebuildResult(int Added, int Updated, IReadOnlyList<string> NotInRepository);

    /// <summary>
    /// Recreates restore point rows from a repository's own metadata (for a lost or stale catalog).
    /// Points already recorded keep their run link; their files are replaced by the repository's
    /// view. Catalog points of this repository that the repository no longer has are reported, not deleted.
    /// </summary>
    public async Task<RebuildResult> RebuildAsync(string repository, IReadOnlyList<RestorePointRecord> points, ProcessIdentity self, CancellationToken ct)
    {
        await using var connection = await OpenAsync(ct);
        await using var tx = await connection.BeginTransactionAsync(ct);
        var hostId = await UpsertHostAsync(connection, tx, self.Host, ct);
        int added = 0, updated = 0;
        foreach (var point in points)
        {
            await UpsertDomainAsync(connection, tx, point.DomainUuid, point.DomainName, null, ct);
            var existed = await connection.ExecuteScalarAsync<bool>(new CommandDefinition(
                "select exists (select 1 from restore_points where id = @PointId)", new { point.PointId }, tx, cancellationToken: ct));
            if (existed)
            {
                await connection.ExecuteAsync(new CommandDefinition(
                    """
                    update restore_points set domain_uuid = @DomainUuid, domain_name = @DomainName, repository = @Repository,
                           created_at = @createdAt, domain_xml = @DomainXml, consistency = coalesce(@Consistency, consistency)
                    where id = @PointId;
                    delete from restore_point_files where point_id = @PointId
                    """,
                    new { point.PointId, point.DomainUuid, point.DomainName, point.Repository, createdAt = point.CreatedAt.UtcDateTime, point.DomainXml, point.Consistency },
                    tx, cancellationToken: ct));
                await InsertFilesAsync(connection, tx, point, ct);
                updated++;
            }
            else
            {
                await InsertPointAsync(connection, tx, point, null, ct);
                added++;
            }
        }
        var ids = points.Select(p => p.PointId).ToArray();
        var missing = (await connection.QueryAsync<string>(new CommandDefinition(
            "select id from restore_points where repository = @repository and not (id = any(@ids)) order by created_at",
            new { repository, ids }, tx, cancellationToken: ct))).AsList();
        await connection.ExecuteAsync(new CommandDefinition(
            "insert into events (kind, host_id, ok, detail) values ('rebuild', @hostId, true, @detail)",
            new { hostId, detail = $"rebuilt from {repository}: {added} added, {updated} updated, {missing.Count} in the catalog but not in the repository" },
            tx, cancellationToken: ct));
        await tx.CommitAsync(ct);
        return new RebuildResult(added, updated, missing);
    }

    // ---- helpers --------------------------------------------------------------------------------

    private static Task<long> UpsertHostAsync(NpgsqlConnection c, NpgsqlTransaction tx, string host, CancellationToken ct) =>
        c.ExecuteScalarAsync<long>(new CommandDefinition(
            "insert into hosts (name) values (@host) on conflict (name) do update set last_seen = now() returning id",
            new { host }, tx, cancellationToken: ct));

    private static Task<int> UpsertDomainAsync(NpgsqlConnection c, NpgsqlTransaction tx, Guid uuid, string name, long? hostId, CancellationToken ct) =>
        c.ExecuteAsync(new CommandDefinition(
            """
            insert into domains (uuid, name, host_id) values (@uuid, @name, @hostId)
            on conflict (uuid) do update set name = excluded.name, host_id = coalesce(excluded.host_id, domains.host_id), last_seen = now()
            """, new { uuid, name, hostId }, tx, cancellationToken: ct));

    private static Task<long> UpsertPolicyAsync(NpgsqlConnection c, NpgsqlTransaction tx, string name, CancellationToken ct) =>
        c.ExecuteScalarAsync<long>(new CommandDefinition(
            "insert into policies (name) values (@name) on conflict (name) do update set last_seen = now() returning id",
            new { name }, tx, cancellationToken: ct));

    private static async Task InsertPointAsync(NpgsqlConnection c, NpgsqlTransaction tx, RestorePointRecord point, long? runId, CancellationToken ct)
    {
        await c.ExecuteAsync(new CommandDefinition(
            """
            insert into restore_points (id, domain_uuid, domain_name, run_id, repository, created_at, domain_xml, consistency)
            values (@PointId, @DomainUuid, @DomainName, @runId, @Repository, @createdAt, @DomainXml, @Consistency)
            """,
            new { point.PointId, point.DomainUuid, point.DomainName, runId, point.Repository, createdAt = point.CreatedAt.UtcDateTime, point.DomainXml, point.Consistency },
            tx, cancellationToken: ct));
        await InsertFilesAsync(c, tx, point, ct);
    }

    private static async Task InsertFilesAsync(NpgsqlConnection c, NpgsqlTransaction tx, RestorePointRecord point, CancellationToken ct)
    {
        foreach (var f in point.Files)
        {
            await c.ExecuteAsync(new CommandDefinition(
                """
                insert into restore_point_files (point_id, file_key, disk, depth, source_path, format, backing_file, virtual_size, file_size, digest, bytes_read, bytes_written)
                values (@pointId, @FileKey, @Disk, @Depth, @SourcePath, @Format, @BackingFile, @VirtualSize, @FileSize, @Digest, @BytesRead, @BytesWritten)
                """,
                new { pointId = point.PointId, f.FileKey, f.Disk, f.Depth, f.SourcePath, f.Format, f.BackingFile, f.VirtualSize, f.FileSize, f.Digest, f.BytesRead, f.BytesWritten },
                tx, cancellationToken: ct));
        }
    }
}
