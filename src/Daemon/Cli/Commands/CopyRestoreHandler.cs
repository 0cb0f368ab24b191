using System.CommandLine;
using Backupd.Daemon.Offsite;

namespace Backupd.Daemon.Cli.Commands;

/// <summary>`backupd restore --from TARGET --point ID --file NAME --to PATH [--key FILE]`: one file from a copy, streamed and digest-checked.</summary>
internal static class CopyRestoreHandler
{
    public static readonly Option<string?> From = new("--from") { Description = "Restore from this copy repository (a directory or ssh://[user@]host/path) instead of the local one" };
    public static readonly Option<string?> Key = OffsiteCli.KeyOption();

    public static void AddOptions(Command command)
    {
        command.Options.Add(From);
        command.Options.Add(Key);
    }

    public static bool Applies(ParseResult parse) => parse.GetValue(From) is not null;

    public static Task<int> RunAsync(ParseResult parse, CancellationToken ct) => RepositoryCli.GuardAsync("restore", async () =>
    {
        var pointId = parse.GetValue(FileRestoreHandler.Point);
        var name = parse.GetValue(FileRestoreHandler.File);
        var to = parse.GetValue(FileRestoreHandler.To);
        var json = parse.GetValue(GlobalOptions.Json);
        if (pointId is null || name is null || to is null)
        {
            return RepositoryCli.Fail("restore", "--point ID, --file NAME and --to PATH are required with --from", FailureKind.Usage);
        }
        using var copy = OffsiteCli.Open(parse.GetValue(From)!, parse.GetValue(Key), create: false);
        var header = copy.ReadHeader(pointId);
        var file = header.Files.FirstOrDefault(f => f.FileKey == name)
            ?? throw new Storage.Repository.RestorePointNotFoundException($"the copy of {pointId} has no file '{name}' (it has: {string.Join(", ", header.Files.Select(f => f.FileKey))})");
        var watch = System.Diagnostics.Stopwatch.StartNew();
        await RepositoryCli.WithProgressAsync($"restore {name}", file.FileSize, json,
            progress => Task.Run(() => { copy.RestoreFile(pointId, name, to.FullName, progress, ct); return true; }, ct));
        if (json)
        {
            JsonOutput.Write(new { pointId, file = name, from = copy.Location, target = to.FullName, fileSize = file.FileSize, digest = file.Digest, localDigest = file.LocalDigest, verified = true, seconds = Math.Round(watch.Elapsed.TotalSeconds, 3) });
        }
        else
        {
            Console.WriteLine($"restored {name} of {pointId} from {copy.Location} to {to.FullName} ({RepositoryCli.Size(file.FileSize)}, every chunk and the digest verified)");
        }
        return ExitCodes.Ok;
    });
}
