using System.CommandLine;
using Backupd.Daemon.Cli.Catalog;
using Backupd.Storage.Catalog;
using Backupd.Storage.Repository;
using Spectre.Console;

namespace Backupd.Daemon.Cli.Commands;

/// <summary>`backupd catalog migrate|rebuild`: maintain the PostgreSQL catalog itself.</summary>
public static class CatalogCommand
{
    public static Command Create()
    {
        var command = new Command("catalog", "Maintain the PostgreSQL catalog (schema migrations, rebuild from a repository)");
        command.Subcommands.Add(Migrate());
        command.Subcommands.Add(Rebuild());
        return command;
    }

    private static Command Rebuild()
    {
        var repository = new Option<string>("--repository") { Description = "Repository directory whose restore points the catalog should list", Required = true };
        var command = new Command("rebuild", "Recreate the catalog's restore points from a repository's own metadata (after losing the database)");
        command.Options.Add(repository);
        command.Options.Add(GlobalOptions.Json);
        command.SetAction((parse, ct) => CatalogCli.RunAsync(parse, async (store, _) =>
        {
            var dir = Path.GetFullPath(parse.GetValue(repository)!);
            if (!RepositoryCli.IsRepository(dir))
                throw new CliFailureException(FailureKind.NotFound, $"{dir} is not a backupd repository (no repository.json)");
            using var repo = BackupRepository.Open(dir);
            var all = repo.ListPoints();
            var records = all.Select(p => RepositoryRecords.ToRecord(p, dir)).OfType<RestorePointRecord>().ToList();
            var result = await store.RebuildAsync(dir, records, ProcessIdentity.Current, ct);
            var skipped = all.Count - records.Count;
            if (parse.GetValue(GlobalOptions.Json))
            {
                JsonOutput.Write(new { repository = dir, added = result.Added, updated = result.Updated, skippedNotDomains = skipped, notInRepository = result.NotInRepository });
                return ExitCodes.Ok;
            }
            Console.WriteLine($"{dir}: {result.Added} restore point(s) added, {result.Updated} updated" +
                (skipped > 0 ? $", {skipped} skipped (file-level groups, not domains)" : ""));
            foreach (var id in result.NotInRepository)
                Console.WriteLine($"catalog point {id} is not in the repository any more (left in the catalog; remove it with retention or by hand)");
            return ExitCodes.Ok;
        }, ct));
        return command;
    }

    private static Command Migrate()
    {
        var command = new Command("migrate", "Apply the catalog schema scripts this backupd carries (safe to run concurrently and repeatedly)");
        command.Options.Add(GlobalOptions.Json);
        command.SetAction((parse, ct) => CatalogCli.GuardAsync(parse, async () =>
        {
            var config = GlobalOptions.LoadConfig(parse);
            var result = await CatalogMigrator.MigrateAsync(config.CatalogConnectionString, ct);
            if (parse.GetValue(GlobalOptions.Json))
                JsonOutput.Write(new { applied = result.Applied, version = result.CurrentVersion });
            else if (result.Applied.Count == 0)
                AnsiConsole.MarkupLine($"catalog schema is up to date (version {result.CurrentVersion})");
            else
                AnsiConsole.MarkupLine($"applied {string.Join(", ", result.Applied.Select(v => v.ToString("D4")))}; catalog schema is now version {result.CurrentVersion}");
            return ExitCodes.Ok;
        }));
        return command;
    }
}
