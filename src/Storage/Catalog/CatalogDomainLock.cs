using Dapper;
using Npgsql;

namespace Backupd.Storage.Catalog;

/// <summary>Who holds a domain's run lock.</summary>
public sealed record LockHolder(string Host, int Pid, long? RunId, DateTimeOffset Since, string? RunKind = null)
{
    public override string ToString() =>
        $"{Host} pid {Pid}{(RunId is { } r ? $" run {r}" : "")} since {Since.UtcDateTime:yyyy-MM-dd HH:mm:ss}Z";
}

/// <summary>Another process holds the domain's run lock; nothing was done.</summary>
public sealed class DomainBusyException : CatalogException
{
    public DomainBusyException(Guid domainUuid, string domainName, LockHolder? holder)
        : base(holder?.RunKind is { } kind && kind != RunKinds.Backup
            // Any run kind takes the lock: say which, so a refused backup during an instant restore or a drill is not a mystery.
            ? $"domain {domainName} ({domainUuid}) is locked by its {kind} run ({holder}); nothing was done (`backupd status` shows its progress)"
            : $"domain {domainName} ({domainUuid}) is being backed up by {holder?.ToString() ?? "another process (details not recorded yet)"}; nothing was done")
    {
        DomainUuid = domainUuid;
        Holder = holder;
    }

    public DomainBusyException() { }
    public DomainBusyException(string message) : base(message) { }
    public DomainBusyException(string message, Exception inner) : base(message, inner) { }

    public Guid DomainUuid { get; }
    public LockHolder? Holder { get; }
}

/// <summary>
/// Per-domain exclusivity across processes and hosts: a PostgreSQL session advisory lock, held on
/// a dedicated unpooled connection for the whole run. If the process dies, PostgreSQL ends the
/// session and the lock goes with it; nothing needs cleaning up.
/// </summary>
public sealed class CatalogDomainLock : IAsyncDisposable
{
    private readonly NpgsqlConnection _connection;
    private readonly long _key;

    static CatalogDomainLock() => DefaultTypeMap.MatchNamesWithUnderscores = true;

    private CatalogDomainLock(NpgsqlConnection connection, Guid domainUuid, long key)
    {
        _connection = connection;
        DomainUuid = domainUuid;
        _key = key;
    }

    public Guid DomainUuid { get; }

    /// <summary>Takes the lock without waiting. Throws <see cref="DomainBusyException"/> naming the holder if it is taken.</summary>
    public static async Task<CatalogDomainLock> AcquireAsync(string connectionString, Guid domainUuid, string domainName, ProcessIdentity self, CancellationToken ct)
    {
        var builder = new NpgsqlConnectionStringBuilder(connectionString)
        {
            // A pooled connection could outlive us in the pool and keep the lock; this session is ours alone.
            Pooling = false,
            ApplicationName = $"backupd lock {self.Host}:{self.Pid}",
            KeepAlive = 30,
        };
        var connection = new NpgsqlConnection(builder.ConnectionString);
        try
        {
            await connection.OpenAsync(ct);
            var key = AdvisoryLockKeys.Domain(domainUuid);
            var got = await connection.ExecuteScalarAsync<bool>(new CommandDefinition("select pg_try_advisory_lock(@key)", new { key }, cancellationToken: ct));
            if (!got)
                throw new DomainBusyException(domainUuid, domainName, await FindHolderAsync(connection, domainUuid, ct));
            await connection.ExecuteAsync(new CommandDefinition(
                """
                insert into domain_locks (domain_uuid, host, pid, run_id, since, backend_pid)
                values (@domainUuid, @host, @pid, null, now(), pg_backend_pid())
                on conflict (domain_uuid) do update
                  set host = excluded.host, pid = excluded.pid, run_id = null, since = excluded.since, backend_pid = excluded.backend_pid
                """,
                new { domainUuid, host = self.Host, pid = self.Pid }, cancellationToken: ct));
            return new CatalogDomainLock(connection, domainUuid, key);
        }
        catch
        {
            await connection.DisposeAsync();
            throw;
        }
    }

    /// <summary>Records the run id in the holder row, for the busy message of a second attempt.</summary>
    public Task SetRunAsync(long runId, CancellationToken ct) =>
        _connection.ExecuteAsync(new CommandDefinition(
            "update domain_locks set run_id = @runId where domain_uuid = @uuid and backend_pid = pg_backend_pid()",
            new { runId, uuid = DomainUuid }, cancellationToken: ct));

    /// <summary>True while this session still holds the lock (false if the connection was lost).</summary>
    public async Task<bool> IsHeldAsync(CancellationToken ct)
    {
        try
        {
            var (classId, objId) = AdvisoryLockKeys.PgLocksParts(_key);
            return await _connection.ExecuteScalarAsync<bool>(new CommandDefinition(
                """
                select exists (select 1 from pg_locks
                  where locktype = 'advisory' and granted and pid = pg_backend_pid()
                    and classid = @classId::oid and objid = @objId::oid and objsubid = 1)
                """, new { classId, objId }, cancellationToken: ct));
        }
        catch (NpgsqlException)
        {
            return false;
        }
    }

    /// <summary>Whether any session holds the run lock of <paramref name="domainUuid"/>; read from pg_locks without taking it.</summary>
    public static Task<bool> IsHeldByAnyoneAsync(NpgsqlConnection connection, Guid domainUuid, CancellationToken ct)
    {
        var (classId, objId) = AdvisoryLockKeys.PgLocksParts(AdvisoryLockKeys.Domain(domainUuid));
        return connection.ExecuteScalarAsync<bool>(new CommandDefinition(
            """
            select exists (select 1 from pg_locks
              where locktype = 'advisory' and granted and classid = @classId::oid and objid = @objId::oid and objsubid = 1
                and database = (select oid from pg_database where datname = current_database()))
            """, new { classId, objId }, cancellationToken: ct));
    }

    /// <summary>The current holder: the domain_locks row if it belongs to the session pg_locks shows, else what pg_stat_activity knows.</summary>
    public static async Task<LockHolder?> FindHolderAsync(NpgsqlConnection connection, Guid domainUuid, CancellationToken ct)
    {
        var (classId, objId) = AdvisoryLockKeys.PgLocksParts(AdvisoryLockKeys.Domain(domainUuid));
        var row = await connection.QueryFirstOrDefaultAsync<HolderRow>(new CommandDefinition(
            """
            select l.pid as backend_pid, a.application_name, a.backend_start,
                   d.host, d.pid, d.run_id, d.since, d.backend_pid as recorded_backend_pid, r.kind as run_kind
            from pg_locks l
            left join pg_stat_activity a on a.pid = l.pid
            left join domain_locks d on d.domain_uuid = @domainUuid
            left join runs r on r.id = d.run_id
            where l.locktype = 'advisory' and l.granted and l.classid = @classId::oid and l.objid = @objId::oid and l.objsubid = 1
              and l.database = (select oid from pg_database where datname = current_database())
            limit 1
            """, new { domainUuid, classId, objId }, cancellationToken: ct));
        if (row is null) return null;
        if (row.Host is not null && row.RecordedBackendPid == row.BackendPid)
            return new LockHolder(row.Host, row.Pid ?? 0, row.RunId, new DateTimeOffset(DateTime.SpecifyKind(row.Since!.Value, DateTimeKind.Utc)), row.RunKind);
        // The holder has the lock but has not written its row yet: fall back to its session's name ("backupd lock host:pid").
        var app = row.ApplicationName ?? "";
        var hostPid = app.StartsWith("backupd lock ", StringComparison.Ordinal) ? app["backupd lock ".Length..] : app;
        var colon = hostPid.LastIndexOf(':');
        var host = colon > 0 ? hostPid[..colon] : $"postgres backend {row.BackendPid}";
        _ = int.TryParse(colon > 0 ? hostPid[(colon + 1)..] : "", out var pid);
        return new LockHolder(host, pid, null, new DateTimeOffset(DateTime.SpecifyKind(row.BackendStart ?? DateTime.UtcNow, DateTimeKind.Utc)));
    }

    public async ValueTask DisposeAsync()
    {
        try
        {
            await _connection.ExecuteAsync(
                "delete from domain_locks where domain_uuid = @uuid and backend_pid = pg_backend_pid(); select pg_advisory_unlock(@key)",
                new { uuid = DomainUuid, key = _key });
        }
        catch (NpgsqlException)
        {
            // The session is gone already, and the lock with it.
        }
        await _connection.DisposeAsync();
    }

    private sealed class HolderRow
    {
        public int BackendPid { get; init; }
        public string? ApplicationName { get; init; }
        public DateTime? BackendStart { get; init; }
        public string? Host { get; init; }
        public int? Pid { get; init; }
        public long? RunId { get; init; }
        public DateTime? Since { get; init; }
        public int? RecordedBackendPid { get; init; }
        public string? RunKind { get; init; }
    }
}
