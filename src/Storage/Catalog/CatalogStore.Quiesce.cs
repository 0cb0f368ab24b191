using Dapper;

namespace Backupd.Storage.Catalog;

public sealed partial class CatalogStore
{
    /// <summary>
    /// Stores a run's quiesce report (JSON) as runs.detail->'quiesce', and an event of kind quiesce when
    /// <paramref name="noteworthy"/> (a fallback, a failure, a thaw). runId null: a refused run, which the
    /// catalog does not keep, so only the event records it.
    /// </summary>
    public async Task RecordQuiesceAsync(long? runId, Guid domainUuid, string reportJson, bool noteworthy, bool ok, ProcessIdentity self, CancellationToken ct)
    {
        if (runId is { } id)
        {
            await using var connection = await OpenAsync(ct);
            await connection.ExecuteAsync(new CommandDefinition(
                "update runs set detail = coalesce(detail, '{}'::jsonb) || jsonb_build_object('quiesce', @reportJson::jsonb) where id = @id",
                new { id, reportJson }, cancellationToken: ct));
        }
        if (noteworthy)
            await RecordEventAsync(EventKinds.Quiesce, domainUuid, null, ok, runId is null ? reportJson : $"run {runId}: {reportJson}", self, ct);
    }
}
