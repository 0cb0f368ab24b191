using Dapper;
using Npgsql;

namespace Backupd.Storage.Catalog;

/// <summary>What a migration pass did.</summary>
public sealed record MigrationResult(IReadOnlyList<int> Applied, int CurrentVersion);

/// <summary>
/// Applies the embedded schema scripts in version order, one transaction each, recording each in
/// <c>catalog_schema_version</c>. The whole pass runs under a session advisory lock, so several
/// processes starting at once serialise: the first applies, the others find nothing left to do.
/// </summary>
/// <remarks>
/// Own runner rather than DbUp: DbUp's PostgreSQL provider takes no lock (two processes starting
/// together can both apply a script), and does not check that an applied script is unchanged.
/// Those two properties are the whole job, and fit in this file.
/// </remarks>
public static class CatalogMigrator
{
    public const string VersionTable = "catalog_schema_version";

    public static Task<MigrationResult> MigrateAsync(string connectionString, CancellationToken ct) =>
        MigrateAsync(connectionString, Migration.LoadEmbedded(), ct);

    public static async Task<MigrationResult> MigrateAsync(string connectionString, IReadOnlyList<Migration> migrations, CancellationToken ct)
    {
        await using var connection = new NpgsqlConnection(connectionString);
        await connection.OpenAsync(ct);
        await connection.ExecuteAsync(new CommandDefinition("select pg_advisory_lock(@key)", new { key = AdvisoryLockKeys.Migrations }, cancellationToken: ct));
        try
        {
            await connection.ExecuteAsync(new CommandDefinition(
                $"""
                create table if not exists {VersionTable} (
                    version    integer primary key,
                    name       text not null,
                    checksum   text not null,
                    applied_at timestamptz not null default now()
                )
                """, cancellationToken: ct));
            var applied = (await connection.QueryAsync<(int Version, string Name, string Checksum)>(new CommandDefinition(
                $"select version, name, checksum from {VersionTable} order by version", cancellationToken: ct))).ToList();
            CheckAppliedMatch(applied, migrations);

            var done = applied.Select(a => a.Version).ToHashSet();
            var newlyApplied = new List<int>();
            foreach (var migration in migrations.Where(m => !done.Contains(m.Version)))
            {
                await using var tx = await connection.BeginTransactionAsync(ct);
                try
                {
                    await connection.ExecuteAsync(new CommandDefinition(migration.Sql, transaction: tx, cancellationToken: ct));
                }
                catch (PostgresException e)
                {
                    throw new CatalogException($"catalog migration {migration.Version:D4}_{migration.Name} failed (nothing of it was applied): {e.MessageText}", e);
                }
                await connection.ExecuteAsync(new CommandDefinition(
                    $"insert into {VersionTable} (version, name, checksum) values (@Version, @Name, @Checksum)",
                    new { migration.Version, migration.Name, migration.Checksum }, tx, cancellationToken: ct));
                await tx.CommitAsync(ct);
                newlyApplied.Add(migration.Version);
            }
            var current = Math.Max(applied.Count == 0 ? 0 : applied[^1].Version, newlyApplied.Count == 0 ? 0 : newlyApplied[^1]);
            return new MigrationResult(newlyApplied, current);
        }
        finally
        {
            // Closing the session would release it too; unlock explicitly so a pooled connection is clean.
            await connection.ExecuteAsync("select pg_advisory_unlock(@key)", new { key = AdvisoryLockKeys.Migrations });
        }
    }

    /// <summary>The schema version recorded in the database, 0 when the catalog was never migrated.</summary>
    public static async Task<int> CurrentVersionAsync(NpgsqlConnection connection, CancellationToken ct)
    {
        var exists = await connection.ExecuteScalarAsync<bool>(new CommandDefinition(
            "select to_regclass(@name) is not null", new { name = VersionTable }, cancellationToken: ct));
        if (!exists) return 0;
        return await connection.ExecuteScalarAsync<int>(new CommandDefinition($"select coalesce(max(version), 0) from {VersionTable}", cancellationToken: ct));
    }

    private static void CheckAppliedMatch(List<(int Version, string Name, string Checksum)> applied, IReadOnlyList<Migration> known)
    {
        var byVersion = known.ToDictionary(m => m.Version);
        foreach (var (version, name, checksum) in applied)
        {
            if (!byVersion.TryGetValue(version, out var m))
                throw new CatalogException($"catalog schema version {version:D4}_{name} is newer than this backupd knows (up to {(known.Count == 0 ? 0 : known[^1].Version):D4}); upgrade backupd");
            if (m.Checksum != checksum)
                throw new CatalogException($"catalog migration {version:D4}_{name} was applied from a different script (checksum {checksum[..12]}…, this backupd has {m.Checksum[..12]}…); refusing to continue");
        }
    }
}
