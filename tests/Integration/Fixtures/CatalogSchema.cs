using Dapper;
using Npgsql;

namespace Backupd.Integration.Fixtures;

/// <summary>A text description of a database's public schema (columns, constraints, indexes), for exact comparisons.</summary>
internal static class CatalogSchema
{
    public static readonly string[] ExpectedTables =
    [
        "catalog_schema_version", "domain_locks", "domains", "events", "hosts", "point_copies", "policies", "restore_point_files", "restore_points", "runs",
    ];

    public static async Task<string> DescribeAsync(string connectionString)
    {
        await using var c = new NpgsqlConnection(connectionString);
        await c.OpenAsync();
        var columns = await c.QueryAsync<string>(
            """
            select table_name || '.' || column_name || ' ' || data_type || ' ' || is_nullable || ' ' || coalesce(column_default, '') || ' ' || is_identity
            from information_schema.columns where table_schema = 'public' order by table_name, ordinal_position
            """);
        var constraints = await c.QueryAsync<string>(
            """
            select conrelid::regclass::text || ' ' || conname || ' ' || pg_get_constraintdef(oid)
            from pg_constraint where connamespace = 'public'::regnamespace order by 1
            """);
        var indexes = await c.QueryAsync<string>("select indexdef from pg_indexes where schemaname = 'public' order by indexname");
        return string.Join('\n', columns.Concat(constraints).Concat(indexes));
    }

    public static async Task<IReadOnlyList<string>> TablesAsync(string connectionString)
    {
        await using var c = new NpgsqlConnection(connectionString);
        return (await c.QueryAsync<string>("select table_name from information_schema.tables where table_schema = 'public' order by table_name")).AsList();
    }
}
