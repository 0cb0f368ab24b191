using Dapper;

namespace Backupd.Storage.Catalog;

/// <summary>Runs that produce no restore point (chain shorten, move-disk): they end succeeded with what they did in runs.detail.</summary>
public sealed partial class CatalogStore
{
    /// <summary>Marks a running maintenance run succeeded, with <paramref name="detailJson"/> (a JSON object) as its detail.</summary>
    public async Task SucceedMaintenanceRunAsync(long runId, string detailJson, CancellationToken ct)
    {
        await using var connection = await OpenAsync(ct);
        await connection.ExecuteAsync(new CommandDefinition(
            $"""
            update runs set state = '{RunStates.Succeeded}', finished_at = now(), step = 'done', error = null,
                   progress_bytes = greatest(progress_bytes, coalesce(progress_total, 0)), detail = @detailJson::jsonb
            where id = @runId and state = '{RunStates.Running}' and kind in ('{RunKinds.Chain}', '{RunKinds.MoveDisk}')
            """,
            new { runId, detailJson }, cancellationToken: ct));
    }
}
