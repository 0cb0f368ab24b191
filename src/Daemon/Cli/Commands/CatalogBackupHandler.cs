using System.CommandLine;
using System.Text.Json;
using Backupd.Daemon.Cli.Catalog;
using Backupd.Daemon.Configuration;
using Backupd.Daemon.Libvirt;
using Backupd.Daemon.Runs;
using Backupd.Daemon.Workflow;
using Backupd.Storage.Catalog;
using Microsoft.Extensions.Logging;
using Npgsql;
using Spectre.Console;

namespace Backupd.Daemon.Cli.Commands;

/// <summary>
/// `backupd backup --domain NAME --to DIR` when a daemon configuration exists: the live backup through
/// <see cref="BackupRunner"/>, so the run holds the catalog's domain lock (a second attempt anywhere exits 4
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
    public static (bool UseCatalog, string? Note) Choose(ParseResult parse) =>
        Choose(parse, Environment.GetEnvironmentVariable(ConfigLoader.EnvironmentVariable), File.Exists);

    /// <summary><see cref="Choose(ParseResult)"/> with the environment and the file system given (for tests).</summary>
    internal static (bool UseCatalog, string? Note) Choose(ParseResult parse, string? environmentConfig, Func<string, bool> fileExists)
    {
        if (parse.GetValue(NoCatalog))
            return (false, "backupd backup: --no-catalog: this run is not recorded in the catalog and takes no domain lock (`backupd catalog rebuild --repository DIR` adds its restore point later)");
        // Named explicitly (--config or the environment: errors in it are errors), or present at the default path.
        if (parse.GetValue(GlobalOptions.Config) is not null || environmentConfig is not null || fileExists(ConfigLoader.DefaultPath))
            return (true, null);
        return (false, $"backupd backup: no configuration ({ConfigLoader.DefaultPath} or ${ConfigLoader.EnvironmentVariable}): this run is not recorded in a catalog");
    }

    public static Task<int> RunAsync(ParseResult parse, CancellationToken ct) => CatalogCli.GuardAsync(parse, async () =>
    {
        var json = parse.GetValue(GlobalOptions.Json);
        var domainName = parse.GetValue(BackupCommand.Domain)!;
        var to = parse.GetValue(BackupCommand.To);
        if (string.IsNullOrWhiteSpace(to))
            throw new CliFailureException(ExitCodes.UsageOrConfig, "--domain needs --to REPOSITORY_DIR (where the restore point goes)");
        var config = GlobalOptions.LoadConfig(parse);
        // Like the daemon at start: safe to run concurrently, a no-op when the schema is current.
        // An unreachable catalog stops the run here, before the VM is touched.
        try { await CatalogMigrator.MigrateAsync(config.CatalogConnectionString, ct); }
        catch (Exception e) when (e is NpgsqlException or TimeoutException)
        {
            throw new CliFailureException(ExitCodes.Failed, $"the catalog at {Describe(config.CatalogConnectionString)} is unreachable ({e.Message}); " +
                "nothing was done. Fix 'catalog-connection' or PostgreSQL, or run with --no-catalog to back up into the repository only (not recorded, no domain lock)");
        }
        await using var store = new CatalogStore(config.CatalogConnectionString);
        using var loggers = CliLogging.Create();
        LibvirtHypervisor hypervisor;
        try { hypervisor = LibvirtHypervisor.Open(config.LibvirtUri); }
        catch (LibvirtException e) { throw new CliFailureException(ExitCodes.Failed, $"cannot connect to libvirt at {config.LibvirtUri}: {e.LibvirtMessage}"); }
        using var _ = hypervisor;
        // A signal cancels the copy; the workflow still merges the overlays back, then the run is recorded.
        using var signals = new SignalGuard(ct);
        ct = signals.Token;
        ProgressTask? bar = null;
        var workflow = new WorkflowDomainBackup(hypervisor, new QemuImg(), RepositoryRunOptions.Apply(parse, BackupCommand.WithBandwidth(parse, LiveBackupSettings.From(config).ToOptions())), to, loggers.CreateLogger("backupd.backup"))
        {
            IncludeDisks = parse.GetValue(BackupCommand.Disk) ?? [],
            ExcludeDisks = parse.GetValue(BackupCommand.ExcludeDisk) ?? [],
            Quiesce = parse.GetValue(BackupCommand.Quiesce),
            QuiesceRecords = store,
            OnProgress = p =>
            {
                if (bar is null) return;
                bar.MaxValue = Math.Max(1, p.TotalBytes);
                bar.Value = p.TotalBytesDone;
            },
        };
        var runner = new BackupRunner(store, workflow, loggers.CreateLogger<BackupRunner>())
        {
            CatalogRetry = config.CatalogRetry,
            Pending = new PendingRunRecords(config.StateDirectory),
        };
        var request = new Runs.BackupRequest(domainName, "cli", Environment.UserName);
        BackupRunResult result;
        try
        {
            if (json || Console.IsOutputRedirected)
            {
                result = await runner.RunAsync(request, null, ct);
            }
            else
            {
                result = await AnsiConsole.Progress()
                    .Columns(new TaskDescriptionColumn(), new ProgressBarColumn(), new PercentageColumn(), new TransferSpeedColumn(), new RemainingTimeColumn())
                    .StartAsync(async context =>
                    {
                        bar = context.AddTask($"backup {Markup.Escape(domainName)}", maxValue: 1);
                        var r = await runner.RunAsync(request, null, ct);
                        bar.Value = bar.MaxValue;
                        return r;
                    });
            }
        }
        catch (BackupFailedException e) when (workflow.LastResult is not null)
        {
            // The workflow's own result says what happened per disk: print it once (not the generic error object too).
            if (json) Write(workflow.LastResult, workflow.LastRunId);
            else PrintSummary(workflow.LastResult, workflow.LastRunId);
            await Console.Error.WriteLineAsync($"backupd: {e.Message}");
            return e.NeedsAttention ? ExitCodes.NeedsAttention : ExitCodes.Failed;
        }

        if (json) Write(workflow.LastResult!, result.RunId);
        else
        {
            PrintSummary(workflow.LastResult!, result.RunId);
            AnsiConsole.MarkupLine($"restore point: {Markup.Escape(result.Point.PointId)} in {Markup.Escape(result.Point.Repository)} (recorded in the catalog)");
            AnsiConsole.MarkupLine($"read {CatalogCli.Size(result.Stats.BytesRead)}, wrote {CatalogCli.Size(result.Stats.BytesWritten)}; copy {CatalogCli.Duration(result.Stats.CopyTime)}, " +
                $"overlay lived {CatalogCli.Duration(result.Stats.OverlayLifetime)}, commit {CatalogCli.Duration(result.Stats.CommitTime)}");
        }
        if (signals.LateSignalNote(result.Point.PointId) is { } note) await Console.Error.WriteLineAsync(note);
        return ExitCodes.Ok;
    });

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

    private static void PrintSummary(BackupResult r, long? catalogRunId)
    {
        var color = r.Outcome == RunOutcome.Succeeded ? "green" : "red";
        AnsiConsole.MarkupLine($"catalog run [bold]{(catalogRunId?.ToString(System.Globalization.CultureInfo.InvariantCulture) ?? "?")}[/] of [bold]{Markup.Escape(r.Domain)}[/]: " +
            $"[{color}]{Kebab(r.Outcome)}[/]{(r.Consistency is { } c ? $", {Kebab(c)}" : "")}");
        if (r.Error is not null) AnsiConsole.MarkupLine($"error: {Markup.Escape(r.Error)}");
        foreach (var d in r.Disks.Where(d => !d.BackOnBase)) AnsiConsole.MarkupLine($"[red]{Markup.Escape(d.Target)} is NOT back on its base image[/]: {Markup.Escape(d.Problem ?? "")}");
        foreach (var s in r.Skipped) AnsiConsole.MarkupLine($"skipped {Markup.Escape(s.Target)}: {Markup.Escape(s.Reason)}");
        LiveBackupHandler.PrintHealing(r);
    }

    /// <summary>The words the JSON uses (crash-consistent, needs-attention), not the C# enum names.</summary>
    internal static string Kebab<T>(T value) where T : struct, Enum => JsonNamingPolicy.KebabCaseLower.ConvertName(value.ToString());

    /// <summary>The workflow's JSON result (same shape as with --no-catalog), plus the catalog run id.</summary>
    private static void Write(BackupResult result, long? catalogRunId)
    {
        var node = JsonSerializer.SerializeToNode(result, LiveBackupHandler.JsonOptions)!.AsObject();
        node["catalogRunId"] = catalogRunId;
        Console.WriteLine(node.ToJsonString(LiveBackupHandler.JsonOptions));
    }
}
