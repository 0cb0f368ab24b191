using System.CommandLine;
using Backupd.Daemon.Cli.Catalog;
using Backupd.Storage.Catalog;
using Spectre.Console;

namespace Backupd.Daemon.Cli.Commands;

/// <summary>`backupd catalog migrate|rebuild`: maintain the PostgreSQL catalog itself.</summary>
public static class CatalogCommand
{
    public static Command Create()
    {
        var command = new Command("catalog", "Maintain the PostgreSQL catalog (schema migrations, rebuild from a repository)");
        command.Subcommands.Add(Migrate());
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
