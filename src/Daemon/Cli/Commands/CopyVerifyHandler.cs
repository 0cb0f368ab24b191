using System.CommandLine;
using Backupd.Daemon.Offsite;

namespace Backupd.Daemon.Cli.Commands;

/// <summary>`backupd verify --target TARGET [--read-data] [--key FILE]`: a copy repository's indexes and chunks; exit 5 when damaged.</summary>
internal static class CopyVerifyHandler
{
    public static readonly Option<string?> Target = new("--target") { Description = "Verify this copy repository (a directory or ssh://[user@]host/path)" };
    public static readonly Option<bool> ReadData = new("--read-data") { Description = "With --target: also fetch, decrypt and check every chunk (default: indexes, and that every chunk they name is stored)" };
    public static readonly Option<string?> Key = OffsiteCli.KeyOption();

    public static void AddOptions(Command command)
    {
        command.Options.Add(Target);
        command.Options.Add(ReadData);
        command.Options.Add(Key);
    }

    public static bool Applies(ParseResult parse) => parse.GetValue(Target) is not null;

    public static Task<int> RunAsync(ParseResult parse, CancellationToken ct) => RepositoryCli.GuardAsync("verify", async () =>
    {
        var json = parse.GetValue(GlobalOptions.Json);
        using var copy = OffsiteCli.Open(parse.GetValue(Target)!, parse.GetValue(Key), create: false);
        var watch = System.Diagnostics.Stopwatch.StartNew();
        var report = await Task.Run(() => copy.Verify(parse.GetValue(ReadData), ct), ct);
        if (json)
        {
            JsonOutput.Write(new { ok = report.Ok, target = copy.Location, indexes = report.Indexes, chunksChecked = report.ChunksChecked, chunksRead = report.ChunksRead, problems = report.Problems, seconds = Math.Round(watch.Elapsed.TotalSeconds, 3) });
        }
        else
        {
            foreach (var p in report.Problems)
            {
                Console.WriteLine($"DAMAGED: {p}");
            }
            Console.WriteLine(report.Ok
                ? $"ok: {report.Indexes} points, {report.ChunksChecked} chunk references present{(report.ChunksRead > 0 ? $", {report.ChunksRead} chunks read and authenticated" : "")}"
                : $"{report.Problems.Count} problem(s) in {copy.Location}");
        }
        return report.Ok ? ExitCodes.Ok : ExitCodes.Damaged;
    });
}
