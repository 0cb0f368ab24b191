using System.CommandLine;
using Backupd.Daemon.Copies;
using Backupd.Storage.Catalog;
using Backupd.Storage.Offsite;
using Backupd.Storage.Repository;
using Microsoft.Extensions.Logging.Abstractions;
using Npgsql;

namespace Backupd.Daemon.Cli.Commands;

/// <summary>
/// `backupd copy --point ID --to TARGET [--repository DIR] [--key FILE] [--bandwidth RATE]`: copies one committed restore
/// point into a copy repository (a local path or ssh://user@host/path), encrypted, compressed, sending only missing
/// chunks. With a daemon configuration the copy is a run of kind copy in the catalog and the point then lists the
/// target among its copies; the point's repository comes from the catalog when --repository is not given.
/// </summary>
public static class CopyCommand
{
    public static Command Create()
    {
        var repository = new Option<string?>("--repository") { Description = "The local repository holding the point (default: the one the catalog recorded for it)" };
        var point = new Option<string>("--point") { Description = "Restore point id to copy", Required = true };
        var to = new Option<string>("--to") { Description = "Copy target: a directory, or ssh://[user@]host[:port]/path (served by `backupd serve` there)", Required = true };
        var bandwidth = new Option<string?>("--bandwidth") { Description = "Limit the bytes sent to RATE per second (64M, 500K/s; binary units)", HelpName = "RATE" };
        var key = Offsite.OffsiteCli.KeyOption();
        var command = new Command("copy", "Copy a restore point to an encrypted, deduplicating copy repository (local path or over SSH)");
        foreach (var o in new Option[] { repository, point, to, key, bandwidth, CatalogBackupHandler.NoCatalog, GlobalOptions.Json })
        {
            command.Options.Add(o);
        }
        command.SetAction((parse, ct) => RepositoryCli.GuardAsync("copy", async () =>
        {
            var pointId = parse.GetValue(point)!;
            var json = parse.GetValue(GlobalOptions.Json);
            long? rate = parse.GetValue(bandwidth) is { } b
                ? (Policies.Loading.Units.TryParseRate(b, out var r) && r > 0 ? r : throw new CliFailureException(FailureKind.Usage, $"--bandwidth '{b}': expected a rate like 64M or 500K (bytes per second)"))
                : null;
            var (useCatalog, note) = CatalogBackupHandler.Choose(parse, "copy");
            await using var store = useCatalog ? await OpenCatalogAsync(parse, ct) : null;
            var recorded = store is null ? null : await store.GetPointAsync(pointId, ct);
            var dir = parse.GetValue(repository) is { } given ? Path.GetFullPath(given)
                : recorded?.Point.Repository
                ?? throw new CliFailureException(FailureKind.NotFound, store is null
                    ? $"restore point {pointId}: give --repository DIR (without a daemon configuration there is no catalog to find it in)"
                    : $"the catalog has no restore point '{pointId}'; give --repository DIR to copy a point it does not know");
            if (!RepositoryCli.IsRepository(dir))
            {
                return RepositoryCli.Fail("copy", $"{dir} is not a backupd repository (no repository.json)", FailureKind.NotFound);
            }
            if (note is not null && !json) await Console.Error.WriteLineAsync(note);
            else if (store is not null && recorded is null && !json)
                await Console.Error.WriteLineAsync($"backupd copy: the catalog has no restore point '{pointId}': this copy is not recorded in it");
            long total;
            using (var local = BackupRepository.Open(dir))
            {
                var info = local.FindPoint(pointId) ?? throw new RestorePointNotFoundException($"restore point {pointId} does not exist in {dir}");
                total = info.Files.Sum(f => f.FileSize);
            }
            var p = recorded?.Point;
            var job = new CopyJob(pointId, dir, parse.GetValue(to)!, parse.GetValue(key), rate, "cli", Environment.UserName);
            var runner = new CopyRunner(store, NullLogger.Instance);
            var (report, runId) = await RepositoryCli.WithProgressAsync($"copy {pointId}", total, json,
                progress => runner.RunAsync(job, p is null ? null : new CopiedPoint(p.DomainUuid, p.DomainName, new DateTimeOffset(DateTime.SpecifyKind(p.CreatedAt, DateTimeKind.Utc))), progress, ct));
            Print(report, CopyRunner.TargetKey(job.Target), runId, json);
            return ExitCodes.Ok;
        }));
        return command;
    }

    private static double Seconds(TimeSpan t) => Math.Round(t.TotalSeconds, 3);

    internal static async Task<CatalogStore> OpenCatalogAsync(ParseResult parse, CancellationToken ct,
        string nothingDone = "nothing was copied. Fix 'catalog-connection' or PostgreSQL, or run with --no-catalog --repository DIR (the copy is then not recorded)")
    {
        var config = GlobalOptions.LoadConfig(parse);
        try { await CatalogMigrator.MigrateAsync(config.CatalogConnectionString, ct); }
        catch (Exception e) when (e is NpgsqlException or TimeoutException)
        {
            throw new CliFailureException(FailureKind.Failed, $"the catalog at {CatalogBackupHandler.Describe(config.CatalogConnectionString)} is unreachable ({e.Message}); " + nothingDone);
        }
        return new CatalogStore(config.CatalogConnectionString);
    }

    private static void Print(CopyReport report, string target, long? runId, bool json)
    {
        var mib = report.BytesRead / (double)(1 << 20);
        if (json)
        {
            JsonOutput.Write(new
            {
                pointId = report.PointId, target, runId, alreadyThere = report.AlreadyThere, bytesRead = report.BytesRead, chunks = report.Chunks,
                unchangedChunks = report.ChunksUnchanged, zeroChunks = report.ZeroChunks, chunksSent = report.ChunksSent, bytesSent = report.BytesSent, indexBytes = report.IndexBytes,
                seconds = Math.Round(report.Elapsed.TotalSeconds, 3),
                stages = report.Stages is { } t ? new
                {
                    readSeconds = Seconds(t.Read), nameSeconds = Seconds(t.Name), askSeconds = Seconds(t.Ask), sealSeconds = Seconds(t.Seal),
                    sendSeconds = Seconds(t.Send), ackSeconds = Seconds(t.Ack), readerWaitedSeconds = Seconds(t.ReaderWaited), maxBatchesInFlight = t.MaxBatchesInFlight,
                } : null,
            });
        }
        else if (report.AlreadyThere)
        {
            Console.WriteLine($"{report.PointId} is already in {target}; nothing sent");
        }
        else
        {
            var unchanged = report.ChunksUnchanged > 0 ? $"{report.ChunksUnchanged} unchanged since the last copy, " : "";
            Console.WriteLine($"copied {report.PointId} to {target}: read {RepositoryCli.Size(report.BytesRead)}, {report.Chunks} chunks " +
                $"({unchanged}{report.ZeroChunks} zero, {report.ChunksSent} new), sent {RepositoryCli.Size(report.BytesSent + report.IndexBytes)} " +
                $"in {report.Elapsed.TotalSeconds:F1} s ({mib / Math.Max(report.Elapsed.TotalSeconds, 0.001):F0} MiB/s)");
        }
    }
}
