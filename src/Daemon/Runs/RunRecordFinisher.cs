using Backupd.Storage.Catalog;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;

namespace Backupd.Daemon.Runs;

/// <summary>What <see cref="RunRecordFinisher.FinishLeftOversAsync"/> did: runs finished from pending records (with their point, if any), runs marked interrupted.</summary>
public sealed record LeftOverRuns(IReadOnlyList<PendingRunRecord> Recorded, IReadOnlyList<long> Interrupted);

/// <summary>
/// Gets a run's final state into the catalog despite an outage: at the end of a run it retries with
/// back-off for a bounded time (keeping a <see cref="PendingRunRecords"/> file meanwhile), and at the next
/// daemon start, run or `backupd recover` it writes the records that processes which have ended left behind,
/// then marks the remaining `running` runs of dead processes `interrupted`.
/// </summary>
public static class RunRecordFinisher
{
    /// <summary>How long the first retry waits; each next one waits twice as long, up to <see cref="MaxBackOff"/>.</summary>
    public static readonly TimeSpan FirstBackOff = TimeSpan.FromSeconds(1);
    public static readonly TimeSpan MaxBackOff = TimeSpan.FromSeconds(15);

    /// <summary>One attempt may take this long (a catalog behind a dead network route does not answer at all).</summary>
    private static readonly TimeSpan AttemptTimeout = TimeSpan.FromSeconds(20);

    /// <summary>The errors of an unreachable or restarting catalog, worth another attempt.</summary>
    /// A server's answer (a constraint, a missing table) is no outage, except the states of a server shutting down or starting.
    public static bool IsOutage(Exception e) => e switch
    {
        Npgsql.PostgresException pg => pg.SqlState.StartsWith("08", StringComparison.Ordinal) || pg.SqlState.StartsWith("57P", StringComparison.Ordinal) || pg.SqlState == "53300",
        _ => e is Npgsql.NpgsqlException or TimeoutException or System.Net.Sockets.SocketException,
    };

    /// <summary>Writes the record: the point and `succeeded`, or the failed/interrupted state with the step reached.</summary>
    public static async Task WriteAsync(CatalogStore catalog, PendingRunRecord record, CancellationToken ct)
    {
        if (record.Point is { } point)
        {
            await catalog.CompleteRunAsync(record.RunId, record.Stats, point, ct);
            return;
        }
        await catalog.UpdateProgressAsync(record.RunId, record.Step, record.ProgressBytes, record.ProgressTotal, ct);
        await catalog.FailRunAsync(record.RunId, record.State, record.Error ?? record.State, record.Stats, ct);
    }

    /// <summary>
    /// Writes the record now, or, while the catalog is unreachable, keeps it in <paramref name="pending"/> and
    /// retries with back-off for up to <paramref name="window"/>. Null when the catalog has it; the last error when
    /// the window ran out (the pending file stays for the next start, run or `recover`).
    /// </summary>
    public static async Task<Exception?> RecordAsync(CatalogStore catalog, PendingRunRecords? pending, PendingRunRecord record, TimeSpan window, ILogger? logger = null)
    {
        var log = logger ?? NullLogger.Instance;
        var clock = System.Diagnostics.Stopwatch.StartNew();
        var wait = FirstBackOff;
        var saved = false;
        for (var attempt = 1; ; attempt++)
        {
            try
            {
                using var timeout = new CancellationTokenSource(AttemptTimeout);
                await WriteAsync(catalog, record, timeout.Token);
                if (saved) pending!.Remove(record.RunId);
                if (attempt > 1) log.CatalogBack(record.RunId, record.State, attempt);
                return null;
            }
            catch (Exception e) when (IsOutage(e) || e is OperationCanceledException) // the only token here is the attempt's timeout
            {
                if (!saved && pending is not null)
                {
                    try
                    {
                        pending.Save(record);
                        saved = true;
                    }
                    catch (Exception io) when (io is IOException or UnauthorizedAccessException)
                    {
                        log.PendingNotKept(io, record.RunId, pending.Directory);
                    }
                }
                if (clock.Elapsed + wait > window)
                {
                    log.CatalogStillUnreachable(e, record.RunId, clock.Elapsed.TotalSeconds, e.Message,
                        saved ? $"kept in {pending!.Directory} for the next daemon start, backup run or `backupd recover`" : "not kept");
                    return e;
                }
                if (attempt == 1)
                    log.CatalogRetrying(record.RunId, record.State, e.Message, window.TotalSeconds);
                await Task.Delay(wait);
                wait = TimeSpan.FromTicks(Math.Min(wait.Ticks * 2, MaxBackOff.Ticks));
            }
        }
    }

    /// <summary>
    /// Writes the pending records of processes that ended (a live writer is still retrying: left alone), then
    /// marks `running` runs of dead processes `interrupted` (<see cref="CatalogStore.MarkInterruptedRunsAsync"/>).
    /// With <paramref name="onlyDomain"/>, only that domain's runs.
    /// </summary>
    public static async Task<LeftOverRuns> FinishLeftOversAsync(CatalogStore catalog, PendingRunRecords? pending, ProcessIdentity self, Guid? onlyDomain, ILogger? logger, CancellationToken ct)
    {
        var log = logger ?? NullLogger.Instance;
        var recorded = new List<PendingRunRecord>();
        foreach (var record in pending?.List((file, why) => log.PendingUnreadable(file, why)) ?? [])
        {
            if (onlyDomain is { } only && record.DomainUuid != only) continue;
            if (record.Host == self.Host && ProcessIdentity.IsAliveHere(record.Pid, record.ProcessStart)) continue;
            try
            {
                await WriteAsync(catalog, record, ct);
            }
            catch (CatalogException e)
            {
                // The run is not in this catalog (recreated since?): nothing to finish; the file stays for a human, out of the way.
                var kept = pending!.SetAside(record.RunId);
                log.PendingNotFinishable(e, record.RunId, record.DomainName, e.Message, kept,
                    record.Point is { } lost ? $"; `backupd catalog rebuild --repository {lost.Repository}` records restore point {lost.PointId}" : "");
                continue;
            }
            pending!.Remove(record.RunId);
            recorded.Add(record);
            log.PendingRecorded(record.RunId, record.DomainName, record.State,
                record.Point is { } p ? $" with restore point {p.PointId}" : "");
        }
        var interrupted = await catalog.MarkInterruptedRunsAsync(self, onlyDomain, ct);
        if (interrupted.Count > 0)
            log.LeftRunsInterrupted(interrupted.Count, string.Join(",", interrupted));
        return new LeftOverRuns(recorded, interrupted);
    }
}
