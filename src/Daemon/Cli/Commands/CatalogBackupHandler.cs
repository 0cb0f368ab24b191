using System.CommandLine;
using System.Text.Json;
using System.Text.Json.Nodes;
using Backupd.Daemon.Cli.Catalog;
using Backupd.Daemon.Libvirt;
using Backupd.Daemon.Runs;
using Backupd.Daemon.Workflow;
using Backupd.Storage.Catalog;
using Microsoft.Extensions.Logging;
using Spectre.Console;

namespace Backupd.Daemon.Cli.Commands;

/// <summary>
/// `backupd backup --domain NAME --to DIR --catalog`: the live backup through <see cref="BackupRunner"/>,
/// so the run holds the catalog's domain lock (a second attempt anywhere exits 4 naming the holder)
/// and the run, its progress and its restore point are recorded in the configured catalog.
/// </summary>
internal static class CatalogBackupHandler
{
    public static readonly Option<bool> Catalog = new("--catalog")
    {
        Description = "Record the run and its restore point in the catalog of the daemon configuration (and take its domain lock)",
    };

    public static void AddOptions(Command command) => command.Options.Add(Catalog);

    public static bool Applies(ParseResult parse) => parse.GetValue(Catalog);

    public static Task<int> RunAsync(ParseResult parse, CancellationToken ct) => CatalogCli.GuardAsync(parse, async () =>
    {
        var json = parse.GetValue(GlobalOptions.Json);
        var domainName = parse.GetValue(BackupCommand.Domain)!;
        var to = parse.GetValue(BackupCommand.To);
        if (string.IsNullOrWhiteSpace(to))
            throw new CliFailureException(ExitCodes.UsageOrConfig, "--domain needs --to REPOSITORY_DIR (where the restore point goes)");
        var config = GlobalOptions.LoadConfig(parse);
        // Like the daemon at start: safe to run concurrently, a no-op when the schema is current.
        await CatalogMigrator.MigrateAsync(config.CatalogConnectionString, ct);
        await using var store = new CatalogStore(config.CatalogConnectionString);
        using var loggers = CliLogging.Create();
        using var hypervisor = LibvirtHypervisor.Open(config.LibvirtUri);
        ProgressTask? bar = null;
        var workflow = new WorkflowDomainBackup(hypervisor, new QemuImg(), BackupCommand.WithBandwidth(parse, LiveBackupSettings.From(config).ToOptions()), to, loggers.CreateLogger("backupd.backup"))
        {
            IncludeDisks = parse.GetValue(BackupCommand.Disk) ?? [],
            ExcludeDisks = parse.GetValue(BackupCommand.ExcludeDisk) ?? [],
            Quiesce = parse.GetValue(BackupCommand.Quiesce),
            OnProgress = p =>
            {
                if (bar is null) return;
                bar.MaxValue = Math.Max(1, p.TotalBytes);
                bar.Value = p.TotalBytesDone;
            },
        };
        var runner = new BackupRunner(store, workflow, loggers.CreateLogger<BackupRunner>());
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
        catch (BackupRefusedException e)
        {
            throw new CliFailureException(LiveBackupHandler.ExitFor(e.Kind), e.Message);
        }
        catch (BackupFailedException) when (json && workflow.LastResult is not null)
        {
            Write(workflow.LastResult, null);
            throw;
        }

        if (json)
        {
            Write(workflow.LastResult!, result.RunId);
        }
        else
        {
            var r = workflow.LastResult!;
            AnsiConsole.MarkupLine($"catalog run [bold]{result.RunId}[/] of [bold]{Markup.Escape(result.Target.Name)}[/]: [green]succeeded[/]{(r.Consistency is null ? "" : $", {r.Consistency}")}");
            AnsiConsole.MarkupLine($"restore point: {Markup.Escape(result.Point.PointId)} in {Markup.Escape(result.Point.Repository)}");
            AnsiConsole.MarkupLine($"read {CatalogCli.Size(result.Stats.BytesRead)}, wrote {CatalogCli.Size(result.Stats.BytesWritten)}; copy {CatalogCli.Duration(result.Stats.CopyTime)}, " +
                $"overlay lived {CatalogCli.Duration(result.Stats.OverlayLifetime)}, commit {CatalogCli.Duration(result.Stats.CommitTime)}");
            foreach (var s in r.Skipped) AnsiConsole.MarkupLine($"skipped {Markup.Escape(s.Target)}: {Markup.Escape(s.Reason)}");
        }
        return ExitCodes.Ok;
    });

    /// <summary>The workflow's JSON result (same shape as without --catalog), plus the catalog run id.</summary>
    private static void Write(BackupResult result, long? catalogRunId)
    {
        var node = JsonSerializer.SerializeToNode(result, LiveBackupHandler.JsonOptions)!.AsObject();
        node["catalogRunId"] = catalogRunId;
        Console.WriteLine(node.ToJsonString(LiveBackupHandler.JsonOptions));
    }
}
