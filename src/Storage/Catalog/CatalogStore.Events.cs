using Dapper;

namespace Backupd.Storage.Catalog;

/// <summary>Events: verify, retention, rebuild and the kinds the other streams add (<see cref="EventKinds"/>).</summary>
public sealed partial class CatalogStore
{
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
}
