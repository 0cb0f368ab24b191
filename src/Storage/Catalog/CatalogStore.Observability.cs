using Dapper;

namespace Backupd.Storage.Catalog;

/// <summary>One row per domain the catalog knows: what metrics, the status page and its JSON API show.</summary>
public sealed class DomainHealthRow
{
    public Guid Uuid { get; init; }
    public string Name { get; init; } = "";
    public DateTime? LastSuccess { get; init; }
    public DateTime? LastFailure { get; init; }
    /// <summary>Policy of the newest backup run (the one whose schedule says how stale the domain may get).</summary>
    public string? Policy { get; init; }
    public long? LastRunId { get; init; }
    public string? LastState { get; init; }
    public string? LastStep { get; init; }
    public string? LastError { get; init; }
    public double? LastDurationSeconds { get; init; }
    public long LastBytesRead { get; init; }
    public long LastBytesWritten { get; init; }
    public int Points { get; init; }
    /// <summary>Stored size of every file of every point (the repository's bytes for this domain).</summary>
    public long RepositoryBytes { get; init; }
    public string? NewestPoint { get; init; }
    public string? NewestConsistency { get; init; }
    /// <summary>Points whose newest verify (or damage) event says damaged.</summary>
    public int DamagedPoints { get; init; }
    /// <summary>The newest run ended (interrupted or failed) in the copy or commit step: the VM may still run on an overlay.</summary>
    public bool OverlayLeft { get; init; }
    /// <summary>The newest finished restore drill of the domain (issue 11): when it ended, whether it passed, its RTO (null when it never got that far).</summary>
    public DateTime? LastDrillAt { get; init; }
    public bool? LastDrillPassed { get; init; }
    public double? LastDrillRtoSeconds { get; init; }
}

public sealed partial class CatalogStore
{
    /// <summary>Health of every domain, for metrics and the status page: one statement, a few indexed look-ups per domain.</summary>
    public async Task<IReadOnlyList<DomainHealthRow>> ListDomainHealthAsync(CancellationToken ct)
    {
        await using var connection = await OpenAsync(ct);
        return (await connection.QueryAsync<DomainHealthRow>(new CommandDefinition(
            $"""
            select d.uuid, d.name,
                   (select max(r.finished_at) from runs r where r.domain_uuid = d.uuid and r.kind = '{RunKinds.Backup}' and r.state = '{RunStates.Succeeded}') as last_success,
                   (select max(r.finished_at) from runs r where r.domain_uuid = d.uuid and r.kind = '{RunKinds.Backup}' and r.state in ('{RunStates.Failed}', '{RunStates.Interrupted}')) as last_failure,
                   l.policy, l.id as last_run_id, l.state as last_state, l.step as last_step, l.error as last_error,
                   extract(epoch from (l.finished_at - l.started_at))::float8 as last_duration_seconds,
                   coalesce(l.bytes_read, 0) as last_bytes_read, coalesce(l.bytes_written, 0) as last_bytes_written,
                   coalesce(pt.points, 0)::int as points, coalesce(pt.bytes, 0)::bigint as repository_bytes,
                   np.id as newest_point, np.consistency as newest_consistency,
                   coalesce(dm.damaged, 0)::int as damaged_points,
                   coalesce(l.state in ('{RunStates.Failed}', '{RunStates.Interrupted}') and l.step in ('copy', 'commit'), false) as overlay_left,
                   dr.finished_at as last_drill_at, dr.state = '{RunStates.Succeeded}' as last_drill_passed, extract(epoch from dr.rto)::float8 as last_drill_rto_seconds
            from domains d
            left join lateral (
                select r.id, r.state, r.step, r.error, r.started_at, r.finished_at, r.bytes_read, r.bytes_written, p.name as policy
                from runs r left join policies p on p.id = r.policy_id
                where r.domain_uuid = d.uuid and r.kind = '{RunKinds.Backup}' and r.state <> '{RunStates.Running}'
                order by r.started_at desc, r.id desc limit 1) l on true
            left join lateral (
                select r.finished_at, r.state, r.rto from runs r
                where r.domain_uuid = d.uuid and r.kind = '{RunKinds.Drill}' and r.state <> '{RunStates.Running}'
                order by r.started_at desc, r.id desc limit 1) dr on true
            left join lateral (
                select count(distinct rp.id) as points, sum(f.file_size) as bytes
                from restore_points rp left join restore_point_files f on f.point_id = rp.id
                where rp.domain_uuid = d.uuid) pt on true
            left join lateral (
                select rp.id, rp.consistency from restore_points rp where rp.domain_uuid = d.uuid
                order by rp.created_at desc limit 1) np on true
            left join lateral (
                select count(*) as damaged from restore_points rp
                where rp.domain_uuid = d.uuid and (
                    select not e.ok from events e
                    where e.point_id = rp.id and e.kind in ('{EventKinds.Verify}', '{EventKinds.Damage}')
                    order by e.at desc, e.id desc limit 1)) dm on true
            order by d.name
            """, cancellationToken: ct))).AsList();
    }

    /// <summary>The newest events of one domain (verify, damage, retention...), for its status page.</summary>
    public async Task<IReadOnlyList<EventRow>> ListDomainEventsAsync(Guid domainUuid, int limit, CancellationToken ct)
    {
        await using var connection = await OpenAsync(ct);
        return (await connection.QueryAsync<EventRow>(new CommandDefinition(
            EventSelect + " where e.domain_uuid = @domainUuid order by e.at desc, e.id desc limit @limit",
            new { domainUuid, limit }, cancellationToken: ct))).AsList();
    }
}
