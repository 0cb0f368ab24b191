using Dapper;
using Npgsql;

namespace Backupd.Storage.Catalog;

/// <summary>
/// Reads and writes the catalog: runs, restore points, events (one file per concern: CatalogStore.Runs.cs, .Points.cs,
/// .Events.cs, .Rebuild.cs; this one holds the connection and the row writers they share). Every statement is parameterised;
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

    /// <summary>For <see cref="CatalogDomainLock"/>, which needs its own unpooled session.</summary>
    public string ConnectionString { get; }

    public ValueTask<NpgsqlConnection> OpenAsync(CancellationToken ct) => _dataSource.OpenConnectionAsync(ct);

    public ValueTask DisposeAsync() => _dataSource.DisposeAsync();

    // Row writers shared by runs (a completed run records its point) and rebuild.

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
                insert into restore_point_files (point_id, file_key, disk, depth, source_path, format, backing_file, virtual_size, file_size, digest, bytes_read, bytes_written,
                                                 read_mode, full_read_reason, clean_but_changed)
                values (@pointId, @FileKey, @Disk, @Depth, @SourcePath, @Format, @BackingFile, @VirtualSize, @FileSize, @Digest, @BytesRead, @BytesWritten,
                        @ReadMode, @FullReadReason, @CleanButChanged)
                """,
                new { pointId = point.PointId, f.FileKey, f.Disk, f.Depth, f.SourcePath, f.Format, f.BackingFile, f.VirtualSize, f.FileSize, f.Digest, f.BytesRead, f.BytesWritten,
                    f.ReadMode, f.FullReadReason, f.CleanButChanged },
                tx, cancellationToken: ct));
        }
    }
}
