using Dapper;

namespace Backupd.Storage.Catalog;

/// <summary>A finished copy of one restore point to one target, as its run completes it.</summary>
public sealed record PointCopyRecord(
    string PointId, string Target, Guid DomainUuid, string DomainName, DateTimeOffset PointCreatedAt,
    long BytesRead, long Chunks, long ChunksSent, long BytesSent, TimeSpan Elapsed, bool AlreadyThere);

/// <summary>Where one restore point has a copy (`backupd show`).</summary>
public sealed class PointCopyRow
{
    public string PointId { get; init; } = "";
    public string Target { get; init; } = "";
    public Guid DomainUuid { get; init; }
    public string DomainName { get; init; } = "";
    public DateTime PointCreatedAt { get; init; }
    public long? RunId { get; init; }
    public DateTime CopiedAt { get; init; }
    public long Chunks { get; init; }
    public long ChunksSent { get; init; }
    public long BytesSent { get; init; }
}

/// <summary>
/// Copies (issue 15): a run of kind copy per copy attempt, and per point the targets holding it. A copy run takes no
/// domain lock (the VM is not touched: it reads a committed point), so starting one never marks the domain's
/// other running rows interrupted the way <see cref="StartRunAsync"/> does.
/// </summary>
public sealed partial class CatalogStore
{
    public async Task<long> StartCopyRunAsync(RunStart start, string pointId, string target, ProcessIdentity self, CancellationToken ct)
    {
        await using var connection = await OpenAsync(ct);
        await using var tx = await connection.BeginTransactionAsync(ct);
        var hostId = await UpsertHostAsync(connection, tx, self.Host, ct);
        await UpsertDomainAsync(connection, tx, start.DomainUuid, start.DomainName, null, ct);
        var policyId = start.PolicyName is null ? (long?)null : await UpsertPolicyAsync(connection, tx, start.PolicyName, ct);
        var id = await connection.ExecuteScalarAsync<long>(new CommandDefinition(
            $"""
            insert into runs (domain_uuid, domain_name, policy_id, trigger, requested_by, host_id, pid, process_start, kind, step, detail)
            values (@DomainUuid, @DomainName, @policyId, @Trigger, @RequestedBy, @hostId, @pid, @processStart, '{RunKinds.Copy}', 'copy',
                    jsonb_build_object('copy', jsonb_build_object('pointId', @pointId::text, 'target', @target::text)))
            returning id
            """,
            new { start.DomainUuid, start.DomainName, policyId, start.Trigger, start.RequestedBy, hostId, pid = self.Pid, processStart = self.StartToken, pointId, target },
            tx, cancellationToken: ct));
        await tx.CommitAsync(ct);
        return id;
    }

    /// <summary>Marks the copy run succeeded and records that <see cref="PointCopyRecord.Target"/> holds the point, in one transaction.</summary>
    public async Task CompleteCopyRunAsync(long runId, PointCopyRecord copy, CancellationToken ct)
    {
        await using var connection = await OpenAsync(ct);
        await using var tx = await connection.BeginTransactionAsync(ct);
        var updated = await connection.ExecuteAsync(new CommandDefinition(
            $$"""
            update runs set state = '{{RunStates.Succeeded}}', finished_at = now(), step = 'done', error = null,
                   progress_bytes = greatest(progress_bytes, coalesce(progress_total, 0)),
                   bytes_read = @BytesRead, bytes_written = @BytesSent, copy_time = @Elapsed,
                   detail = coalesce(detail, '{}'::jsonb) || jsonb_build_object('copy', coalesce(detail->'copy', '{}'::jsonb)
                       || jsonb_build_object('chunks', @Chunks, 'chunksSent', @ChunksSent, 'bytesSent', @BytesSent, 'alreadyThere', @AlreadyThere))
            where id = @runId and kind = '{{RunKinds.Copy}}'
            """,
            new { runId, copy.BytesRead, copy.BytesSent, copy.Elapsed, copy.Chunks, copy.ChunksSent, copy.AlreadyThere }, tx, cancellationToken: ct));
        if (updated != 1) throw new CatalogException($"copy run {runId} does not exist in the catalog");
        await connection.ExecuteAsync(new CommandDefinition(
            """
            insert into point_copies (point_id, target, domain_uuid, domain_name, point_created_at, run_id, chunks, chunks_sent, bytes_sent)
            values (@PointId, @Target, @DomainUuid, @DomainName, @createdAt, @runId, @Chunks, @ChunksSent, @BytesSent)
            on conflict (point_id, target) do update set run_id = excluded.run_id, copied_at = now(),
                chunks = greatest(point_copies.chunks, excluded.chunks)
            """,
            new { copy.PointId, copy.Target, copy.DomainUuid, copy.DomainName, createdAt = copy.PointCreatedAt.UtcDateTime, runId, copy.Chunks, copy.ChunksSent, copy.BytesSent },
            tx, cancellationToken: ct));
        await tx.CommitAsync(ct);
    }

    /// <summary>The targets holding <paramref name="pointId"/>, by target.</summary>
    public async Task<IReadOnlyList<PointCopyRow>> ListPointCopiesAsync(string pointId, CancellationToken ct)
    {
        await using var connection = await OpenAsync(ct);
        return await QueryPointCopiesAsync(connection, pointId, ct);
    }

    private static async Task<IReadOnlyList<PointCopyRow>> QueryPointCopiesAsync(Npgsql.NpgsqlConnection connection, string pointId, CancellationToken ct) =>
        (await connection.QueryAsync<PointCopyRow>(new CommandDefinition(
            CopySelect + " where point_id = @pointId order by target", new { pointId }, cancellationToken: ct))).AsList();

    /// <summary>The points the catalog says <paramref name="target"/> holds, newest first (a point's local row may be gone).</summary>
    public async Task<IReadOnlyList<PointCopyRow>> ListTargetCopiesAsync(string target, CancellationToken ct)
    {
        await using var connection = await OpenAsync(ct);
        return (await connection.QueryAsync<PointCopyRow>(new CommandDefinition(
            CopySelect + " where target = @target order by point_created_at desc, point_id desc", new { target }, cancellationToken: ct))).AsList();
    }

    /// <summary>Forgets that <paramref name="target"/> holds <paramref name="pointId"/> (after the target deleted its index).</summary>
    public async Task<bool> DeletePointCopyAsync(string pointId, string target, CancellationToken ct)
    {
        await using var connection = await OpenAsync(ct);
        return await connection.ExecuteAsync(new CommandDefinition(
            "delete from point_copies where point_id = @pointId and target = @target", new { pointId, target }, cancellationToken: ct)) == 1;
    }

    private const string CopySelect =
        "select point_id, target, domain_uuid, domain_name, point_created_at, run_id, copied_at, chunks, chunks_sent, bytes_sent from point_copies";
}
