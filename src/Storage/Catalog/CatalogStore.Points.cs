using Dapper;

namespace Backupd.Storage.Catalog;

/// <summary>Domains and restore points: lookup, listing, detail, removal.</summary>
public sealed partial class CatalogStore
{
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
            select file_key, disk, depth, source_path, format, backing_file, virtual_size, file_size, digest, bytes_read, bytes_written,
                   read_mode, full_read_reason, clean_but_changed
            from restore_point_files where point_id = @pointId order by disk, depth
            """, new { pointId }, cancellationToken: ct))).AsList();
        var run = point.RunId is { } runId
            ? await connection.QueryFirstOrDefaultAsync<RunRow>(new CommandDefinition(RunSelect + " where r.id = @runId", new { runId }, cancellationToken: ct))
            : null;
        var verify = await connection.QueryFirstOrDefaultAsync<EventRow>(new CommandDefinition(
            EventSelect + $" where e.kind = '{EventKinds.Verify}' and e.point_id = @pointId order by e.at desc, e.id desc limit 1", new { pointId }, cancellationToken: ct));
        var copies = await QueryPointCopiesAsync(connection, pointId, ct);
        return new RestorePointDetail(point, xml, files, run, verify, copies);
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
               coalesce(sum(f.virtual_size) filter (where f.depth = 0), 0)::bigint as total_virtual_size,
               coalesce((select array_agg(c.target order by c.target) from point_copies c where c.point_id = rp.id), '{}') as copies,
               case when count(f.read_mode) filter (where f.depth = 0) = 0 then null
                    when count(distinct coalesce(f.read_mode, 'full')) filter (where f.depth = 0) = 1 then min(coalesce(f.read_mode, 'full')) filter (where f.depth = 0)
                    else 'mixed' end as read_mode
        from restore_points rp left join restore_point_files f on f.point_id = rp.id
        """;

    private const string PointGroup = " group by rp.id ";
}
