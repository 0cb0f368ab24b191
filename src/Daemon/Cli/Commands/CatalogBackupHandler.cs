using System.CommandLine;
using System.Text.Json;
using Backupd.Daemon.Cli.Catalog;
using Backupd.Daemon.Configuration;
using Backupd.Daemon.Runs;
using Backupd.Daemon.Workflow;
using Backupd.Storage.Catalog;
using Npgsql;
using Spectre.Console;

namespace Backupd.Daemon.Cli.Commands;

/// <summary>
/// `backupd backup --domain NAME --to DIR` when a daemon configuration exists: the spec gets the configured catalog,
/// so <see cref="BackupService"/> runs it under <see cref="BackupRunner"/>: the run holds the catalog's domain lock (a second attempt anywhere exits 4
/// naming the holder) and the run, its progress and its restore point are recorded in the configured catalog.
/// `--no-catalog`, or no configuration file at all, runs repository-only (<see cref="LiveBackupHandler"/>).
/// </summary>
internal static class CatalogBackupHandler
{
    public static readonly Option<bool> NoCatalog = new("--no-catalog")
    {
        Description = "Do not record the run in the catalog nor take its domain lock (for when the catalog is down): repository only",
    };

    public static void AddOptions(Command command) => command.Options.Add(NoCatalog);

    /// <summary>How `backup --domain` runs: through the catalog, or repository-only with the note to print on stderr.</summary>
    public static (bool UseCatalog, string? Note) Choose(ParseResult parse, string command = "backup") =>
        Choose(parse, Environment.GetEnvironmentVariable(ConfigLoader.EnvironmentVariable), File.Exists, command);

    /// <summary><see cref="Choose(ParseResult)"/> with the environment and the file system given (for tests).</summary>
    internal static (bool UseCatalog, string? Note) Choose(ParseResult parse, string? environmentConfig, Func<string, bool> fileExists, string command = "backup")
    {
        if (parse.GetValue(NoCatalog))
            return (false, command == "backup"
                ? "backupd backup: --no-catalog: this run is not recorded in the catalog and takes no domain lock (`backupd catalog rebuild --repository DIR` adds its restore point later)"
                : $"backupd {command}: --no-catalog: this run is not recorded in the catalog");
        // Named explicitly (--config or the environment: errors in it are errors), or present at the default path.
        if (parse.GetValue(GlobalOptions.Config) is not null || environmentConfig is not null || fileExists(ConfigLoader.DefaultPath))
            return (true, null);
        return (false, $"backupd {command}: no configuration ({ConfigLoader.DefaultPath} or ${ConfigLoader.EnvironmentVariable}): this run is not recorded in a catalog");
    }

    public static async Task<int> RunAsync(ParseResult parse, CancellationToken ct)
    {
        var to = LiveBackupHandler.RequireTo(parse);
        var config = GlobalOptions.LoadConfig(parse);
        // Like the daemon at start: safe to run concurrently, a no-op when the schema is current.
        // An unreachable catalog stops the run here, before the VM is touched.
        try { await CatalogMigrator.MigrateAsync(config.CatalogConnectionString, ct); }
        catch (Exception e) when (e is NpgsqlException or TimeoutException)
        {
            throw new CliFailureException(FailureKind.Failed, $"the catalog at {Describe(config.CatalogConnectionString)} is unreachable ({e.Message}); " +
                "nothing was done. Fix 'catalog-connection' or PostgreSQL, or run with --no-catalog to back up into the repository only (not recorded, no domain lock)");
        }
        await using var store = new CatalogStore(config.CatalogConnectionString);
        return await LiveBackupHandler.RunAsync(parse, LiveBackupHandler.SpecFor(parse, LiveBackupSettings.From(config), to, CatalogRecording.For(store, config)), ct);
    }

    /// <summary>Host, port and database of a connection string: enough to find the server, never the password.</summary>
    internal static string Describe(string connectionString)
    {
        try
        {
            var b = new NpgsqlConnectionStringBuilder(connectionString);
            return $"{b.Host ?? "localhost"}:{b.Port} database '{b.Database ?? b.Username ?? "?"}'";
        }
        catch (ArgumentException)
        {
            return "the configured 'catalog-connection' (not a valid connection string)";
        }
    }

    /// <summary>The run as recorded: the workflow's summary, then (when it succeeded) the restore point and its counters.</summary>
    internal static void PrintSummary(BackupResult r, long? catalogRunId, BackupRun? run)
    {
        var color = r.Outcome == RunOutcome.Succeeded ? "green" : "red";
        AnsiConsole.MarkupLine($"catalog run [bold]{(catalogRunId?.ToString(System.Globalization.CultureInfo.InvariantCulture) ?? "?")}[/] of [bold]{Markup.Escape(r.Domain)}[/]: " +
            $"[{color}]{Kebab(r.Outcome)}[/]{(r.Consistency is { } c ? $", {Kebab(c)}" : "")}");
        if (r.Error is not null) AnsiConsole.MarkupLine($"error: {Markup.Escape(r.Error)}");
        foreach (var d in r.Disks.Where(d => !d.BackOnBase)) AnsiConsole.MarkupLine($"[red]{Markup.Escape(d.Target)} is NOT back on its base image[/]: {Markup.Escape(d.Problem ?? "")}");
        foreach (var s in r.Skipped) AnsiConsole.MarkupLine($"skipped {Markup.Escape(s.Target)}: {Markup.Escape(s.Reason)}");
        LiveBackupHandler.PrintHealing(r);
        if (run is null) return;
        AnsiConsole.MarkupLine($"restore point: {Markup.Escape(run.Point.PointId)} in {Markup.Escape(run.Point.Repository)} (recorded in the catalog)");
        AnsiConsole.MarkupLine($"read {CatalogCli.Size(run.Stats.BytesRead)}, wrote {CatalogCli.Size(run.Stats.BytesWritten)}; copy {CatalogCli.Duration(run.Stats.CopyTime)}, " +
            $"overlay lived {CatalogCli.Duration(run.Stats.OverlayLifetime)}, commit {CatalogCli.Duration(run.Stats.CommitTime)}");
    }

    /// <summary>The words the JSON uses (crash-consistent, needs-attention), not the C# enum names.</summary>
    internal static string Kebab<T>(T value) where T : struct, Enum => JsonNamingPolicy.KebabCaseLower.ConvertName(value.ToString());

    /// <summary>The workflow's JSON result (same shape as with --no-catalog), plus the catalog run id.</summary>
    internal static void Write(BackupResult result, long? catalogRunId)
    {
        var node = JsonSerializer.SerializeToNode(result, LiveBackupHandler.JsonOptions)!.AsObject();
        node["catalogRunId"] = catalogRunId;
        Console.WriteLine(node.ToJsonString(LiveBackupHandler.JsonOptions));
    }
}
