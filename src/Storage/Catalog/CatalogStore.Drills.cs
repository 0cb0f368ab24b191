using Dapper;

namespace Backupd.Storage.Catalog;

/// <summary>Restore drills and instant restores: runs that name the point they restored (migration 0005).</summary>
public sealed partial class CatalogStore
{
    /// <summary>Says which point a running drill or instant restore restores (right after <see cref="StartRunAsync"/>).</summary>
    public async Task SetRunPointAsync(long runId, string pointId, CancellationToken ct)
    {
        await using var connection = await OpenAsync(ct);
        await connection.ExecuteAsync(new CommandDefinition(
            $"update runs set point_id = @pointId where id = @runId and kind in ('{RunKinds.Drill}', '{RunKinds.InstantRestore}')",
            new { runId, pointId }, cancellationToken: ct));
    }

    /// <summary>Ends a running drill or instant restore: succeeded (with its RTO, for a drill) or failed with the reason; <paramref name="detailJson"/> is what it did.</summary>
    public async Task FinishRestoreRunAsync(long runId, bool succeeded, TimeSpan? rto, string? error, string detailJson, CancellationToken ct)
    {
        await using var connection = await OpenAsync(ct);
        await connection.ExecuteAsync(new CommandDefinition(
            $"""
            update runs set state = @state, finished_at = now(), step = case when @succeeded then 'done' else step end, error = @error, rto = @rto,
                   progress_bytes = case when @succeeded then greatest(progress_bytes, coalesce(progress_total, 0)) else progress_bytes end, detail = @detailJson::jsonb
            where id = @runId and state = '{RunStates.Running}' and kind in ('{RunKinds.Drill}', '{RunKinds.InstantRestore}')
            """,
            new { runId, succeeded, state = succeeded ? RunStates.Succeeded : RunStates.Failed, rto, error, detailJson }, cancellationToken: ct));
    }

    /// <summary>The newest finished drill of each of these points (for `list` and `show`).</summary>
    public async Task<IReadOnlyDictionary<string, RunRow>> LastDrillsAsync(IReadOnlyCollection<string> pointIds, CancellationToken ct)
    {
        if (pointIds.Count == 0) return new Dictionary<string, RunRow>();
        await using var connection = await OpenAsync(ct);
        var rows = await connection.QueryAsync<RunRow>(new CommandDefinition(
            $"""
            select distinct on (r.point_id) {RunColumns} {RunFrom}
            where r.kind = '{RunKinds.Drill}' and r.state <> '{RunStates.Running}' and r.point_id = any(@ids)
            order by r.point_id, r.started_at desc, r.id desc
            """,
            new { ids = pointIds.ToArray() }, cancellationToken: ct));
        return rows.ToDictionary(r => r.PointId!, StringComparer.Ordinal);
    }
}
