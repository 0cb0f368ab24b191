using System.CommandLine;
using Backupd.Storage.Repository;

namespace Backupd.Daemon.Cli.Commands;

/// <summary>`backupd verify --repository DIR [--point ID]`: recompute digests; exit 5 when something is damaged. No daemon config needed.</summary>
internal static class RepositoryVerifyHandler
{
    public static readonly Option<DirectoryInfo?> Repository = new("--repository") { Description = "Repository directory to verify" };
    public static readonly Option<string?> Point = new("--point") { Description = "Verify only this restore point's files (default: everything)" };

    public static void AddOptions(Command command)
    {
        command.Options.Add(Repository);
        command.Options.Add(Point);
    }

    public static bool Applies(ParseResult parse) => parse.GetValue(Repository) is not null;

    public static Task<int> RunAsync(ParseResult parse, CancellationToken ct) => RepositoryCli.GuardAsync("verify", async () =>
    {
        var dir = parse.GetValue(Repository)!;
        var json = parse.GetValue(GlobalOptions.Json);
        if (!RepositoryCli.IsRepository(dir.FullName))
        {
            return RepositoryCli.Fail("verify", $"{dir.FullName} is not a backupd repository (no repository.json)", FailureKind.NotFound);
        }
        using var repo = BackupRepository.Open(dir.FullName);
        var pointId = parse.GetValue(Point);
        long total;
        try
        {
            total = pointId is null
                ? repo.ListPoints().SelectMany(p => p.Files.Select(f => (p.GroupId, f.FileKey, f.VersionId, f.FileSize))).Distinct().Sum(x => x.FileSize)
                : repo.FindPoint(pointId)?.Files.Sum(f => f.FileSize) ?? 0;
        }
        catch (RepositoryCorruptException)
        {
            total = 0; // only the progress bar's total: the verification below reports the refused document
        }
        var watch = System.Diagnostics.Stopwatch.StartNew();
        var report = await RepositoryCli.WithProgressAsync("verify", total, json, progress => repo.VerifyAsync(null, pointId, progress, ct));
        if (json)
        {
            JsonOutput.Write(new { ok = report.Ok, versionsChecked = report.VersionsChecked, bytesChecked = report.BytesChecked, problems = report.Problems, seconds = Math.Round(watch.Elapsed.TotalSeconds, 3) });
        }
        else
        {
            foreach (var p in report.Problems)
            {
                Console.WriteLine($"DAMAGED: {p}");
            }
            Console.WriteLine(report.Ok
                ? $"ok: {report.VersionsChecked} file versions, {RepositoryCli.Size(report.BytesChecked)} verified"
                : $"{report.Problems.Count} problem(s) in {report.VersionsChecked} file versions");
        }
        return report.Ok ? ExitCodes.Ok : ExitCodes.Damaged;
    });
}
