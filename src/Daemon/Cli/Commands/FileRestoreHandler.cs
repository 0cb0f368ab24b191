using System.CommandLine;
using Backupd.Storage.Repository;

namespace Backupd.Daemon.Cli.Commands;

/// <summary>`backupd restore --repository DIR --file NAME [--point ID] --to PATH`. No daemon config needed.</summary>
internal static class FileRestoreHandler
{
    public static readonly Option<DirectoryInfo?> Repository = new("--repository") { Description = "Repository directory" };
    public static readonly Option<string?> File = new("--file") { Description = "File name in the repository (as `backup --file` printed it)" };
    public static readonly Option<string?> Point = new("--point") { Description = "Restore point id (default: the newest point holding the file)" };
    public static readonly Option<FileInfo?> To = new("--to") { Description = "Path to restore to; must not exist" };

    public static void AddOptions(Command command)
    {
        command.Options.Add(Repository);
        command.Options.Add(File);
        command.Options.Add(Point);
        command.Options.Add(To);
    }

    public static bool Applies(ParseResult parse) => parse.GetValue(Repository) is not null;

    public static Task<int> RunAsync(ParseResult parse, CancellationToken ct) => RepositoryCli.GuardAsync("restore", async () =>
    {
        var dir = parse.GetValue(Repository)!;
        var name = parse.GetValue(File);
        var to = parse.GetValue(To);
        var json = parse.GetValue(GlobalOptions.Json);
        if (name is null || to is null)
        {
            return RepositoryCli.Fail("restore", "--file NAME and --to PATH are required with --repository", FailureKind.Usage);
        }
        if (!RepositoryCli.IsRepository(dir.FullName))
        {
            return RepositoryCli.Fail("restore", $"{dir.FullName} is not a backupd repository (no repository.json)", FailureKind.NotFound);
        }
        if (to.Exists || Directory.Exists(to.FullName))
        {
            return RepositoryCli.Fail("restore", $"{to.FullName} already exists; refusing to overwrite it", FailureKind.Usage);
        }
        using var repo = BackupRepository.Open(dir.FullName);
        var pointId = parse.GetValue(Point);
        var point = pointId is not null
            ? repo.FindPoint(pointId) ?? throw new RestorePointNotFoundException($"restore point {pointId} does not exist in {dir.FullName}")
            : repo.ListPoints().FirstOrDefault(p => p.Files.Any(f => f.FileKey == name))
              ?? throw new RestorePointNotFoundException($"no restore point in {dir.FullName} holds a file named '{name}'");
        var file = point.Files.FirstOrDefault(f => f.FileKey == name)
            ?? throw new RestorePointNotFoundException($"restore point {point.PointId} has no file '{name}' (it has: {string.Join(", ", point.Files.Select(f => f.FileKey))})");
        var watch = System.Diagnostics.Stopwatch.StartNew();
        var report = await RepositoryCli.WithProgressAsync($"restore {name}", file.FileSize, json, progress =>
            repo.RestoreFileAsync(point.PointId, name, to.FullName, progress, ct));
        if (json)
        {
            JsonOutput.Write(new
            {
                pointId = point.PointId, file = name, target = to.FullName, fileSize = file.FileSize, digest = file.Digest, verified = true,
                clonedBytes = report.ClonedBytes, writtenBytes = report.WrittenBytes, cloneRefused = report.CloneRefused,
                seconds = Math.Round(watch.Elapsed.TotalSeconds, 3),
            });
        }
        else
        {
            Console.WriteLine($"restored {name} of {point.PointId} to {to.FullName} ({RepositoryCli.Size(file.FileSize)}, digest verified)");
        }
        return ExitCodes.Ok;
    });
}
