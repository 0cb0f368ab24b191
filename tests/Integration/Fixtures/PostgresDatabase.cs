using Npgsql;

namespace Backupd.Integration.Fixtures;

/// <summary>
/// A fresh PostgreSQL database per test class (use as IClassFixture), dropped afterwards.
/// The server comes from $BACKUPD_TEST_PG (default: the role scripts/setup-env creates).
/// </summary>
public sealed class PostgresDatabase : IAsyncLifetime
{
    public const string DefaultServer = "Host=127.0.0.1;Port=5432;Username=backupd;Password=backupd;Database=backupd";

    public static string ServerConnectionString =>
        Environment.GetEnvironmentVariable("BACKUPD_TEST_PG") is { Length: > 0 } s ? s : DefaultServer;

    public string DatabaseName { get; } = $"bkd_test_{Guid.NewGuid():N}"[..24];
    public string ConnectionString { get; private set; } = "";

    public async Task InitializeAsync()
    {
        await using var admin = await OpenServerAsync();
        await using (var create = new NpgsqlCommand($"create database \"{DatabaseName}\"", admin))
            await create.ExecuteNonQueryAsync();
        ConnectionString = new NpgsqlConnectionStringBuilder(ServerConnectionString)
        {
            Database = DatabaseName,
            // Each test database gets its own pool, so dropping it does not hit pooled connections of others.
            Pooling = true,
        }.ConnectionString;
    }

    public async Task DisposeAsync()
    {
        NpgsqlConnection.ClearAllPools();
        await using var admin = await OpenServerAsync();
        await using var drop = new NpgsqlCommand($"drop database if exists \"{DatabaseName}\" with (force)", admin);
        await drop.ExecuteNonQueryAsync();
    }

    private static async Task<NpgsqlConnection> OpenServerAsync()
    {
        var connection = new NpgsqlConnection(ServerConnectionString);
        try
        {
            await connection.OpenAsync();
            return connection;
        }
        catch (Exception e) when (e is NpgsqlException or System.Net.Sockets.SocketException)
        {
            await connection.DisposeAsync();
            throw new InvalidOperationException(
                $"PostgreSQL is not reachable with $BACKUPD_TEST_PG or '{DefaultServer.Replace("Password=backupd;", "", StringComparison.Ordinal)}' ({e.Message}): {Tools.SetupHint}", e);
        }
    }
}
