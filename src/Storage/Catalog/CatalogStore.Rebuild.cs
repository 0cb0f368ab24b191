using Dapper;

namespace Backupd.Storage.Catalog;

/// <summary>Rebuild: restore point rows recreated from a repository's own metadata.</summary>
public sealed partial class CatalogStore
{
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
            $"insert into events (kind, host_id, ok, detail) values ('{EventKinds.Rebuild}', @hostId, true, @detail)",
            new { hostId, detail = $"rebuilt from {repository}: {added} added, {updated} updated, {missing.Count} in the catalog but not in the repository" },
            tx, cancellationToken: ct));
        await tx.CommitAsync(ct);
        return new RebuildResult(added, updated, missing);
    }
}
