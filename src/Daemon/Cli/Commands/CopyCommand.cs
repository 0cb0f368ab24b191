using System.CommandLine;
using Backupd.Daemon.Offsite;
using Backupd.Storage.Repository;

namespace Backupd.Daemon.Cli.Commands;

/// <summary>
/// `backupd copy --repository DIR --point ID --to TARGET [--key FILE]`: copies one committed restore point into a
/// copy repository (a local path or ssh://user@host/path), encrypted, compressed, sending only missing chunks.
/// </summary>
public static class CopyCommand
{
    public static Command Create()
    {
        var repository = new Option<string>("--repository") { Description = "The local repository holding the point", Required = true };
        var point = new Option<string>("--point") { Description = "Restore point id to copy", Required = true };
        var to = new Option<string>("--to") { Description = "Copy target: a directory, or ssh://[user@]host[:port]/path (served by `backupd serve` there)", Required = true };
        var key = OffsiteCli.KeyOption();
        var command = new Command("copy", "Copy a restore point to an encrypted, deduplicating copy repository (local path or over SSH)");
        foreach (var o in new Option[] { repository, point, to, key, GlobalOptions.Json })
        {
            command.Options.Add(o);
        }
        command.SetAction((parse, ct) => RepositoryCli.GuardAsync("copy", async () =>
        {
            var dir = Path.GetFullPath(parse.GetValue(repository)!);
            var pointId = parse.GetValue(point)!;
            var json = parse.GetValue(GlobalOptions.Json);
            if (!RepositoryCli.IsRepository(dir))
            {
                return RepositoryCli.Fail("copy", $"{dir} is not a backupd repository (no repository.json)", FailureKind.NotFound);
            }
            using var local = BackupRepository.Open(dir);
            var info = local.FindPoint(pointId) ?? throw new RestorePointNotFoundException($"restore point {pointId} does not exist in {dir}");
            using var copy = OffsiteCli.Open(parse.GetValue(to)!, parse.GetValue(key), create: true);
            var report = await RepositoryCli.WithProgressAsync($"copy {pointId}", info.Files.Sum(f => f.FileSize), json,
                progress => Task.Run(() => copy.Copy(local, pointId, progress, ct), ct));
            var mib = report.BytesRead / (double)(1 << 20);
            if (json)
            {
                JsonOutput.Write(new
                {
                    pointId, target = copy.Location, alreadyThere = report.AlreadyThere, bytesRead = report.BytesRead, chunks = report.Chunks,
                    zeroChunks = report.ZeroChunks, chunksSent = report.ChunksSent, bytesSent = report.BytesSent, indexBytes = report.IndexBytes,
                    seconds = Math.Round(report.Elapsed.TotalSeconds, 3),
                    stages = report.Stages is { } t ? new
                    {
                        readSeconds = Seconds(t.Read), nameSeconds = Seconds(t.Name), askSeconds = Seconds(t.Ask), sealSeconds = Seconds(t.Seal),
                        sendSeconds = Seconds(t.Send), readerWaitedSeconds = Seconds(t.ReaderWaited), maxBatchesInFlight = t.MaxBatchesInFlight,
                    } : null,
                });
            }
            else if (report.AlreadyThere)
            {
                Console.WriteLine($"{pointId} is already in {copy.Location}; nothing sent");
            }
            else
            {
                Console.WriteLine($"copied {pointId} to {copy.Location}: {RepositoryCli.Size(report.BytesRead)} in {report.Chunks} chunks " +
                    $"({report.ZeroChunks} zero, {report.ChunksSent} new), sent {RepositoryCli.Size(report.BytesSent + report.IndexBytes)} " +
                    $"in {report.Elapsed.TotalSeconds:F1} s ({mib / Math.Max(report.Elapsed.TotalSeconds, 0.001):F0} MiB/s)");
            }
            return ExitCodes.Ok;
        }));
        return command;
    }

    private static double Seconds(TimeSpan t) => Math.Round(t.TotalSeconds, 3);
}
