using System.CommandLine;
using System.Text.Json;
using Backupd.Daemon.Libvirt;
using Backupd.Daemon.Workflow;
using Spectre.Console;

namespace Backupd.Daemon.Cli.Commands;

/// <summary>`backupd recover [--dry-run]`: bring every domain back onto its base images after a run that died.</summary>
public static class RecoverCommand
{
    public static readonly Option<bool> DryRun = new("--dry-run") { Description = "Only report what would be done" };

    public static Command Create()
    {
        var command = new Command("recover", "Merge back overlays left by an interrupted backup (all domains); exit 6 if one cannot be fixed");
        command.Options.Add(DryRun);
        command.Options.Add(GlobalOptions.Json);
        command.SetAction(async (parse, ct) =>
        {
            var settings = LiveBackupSettings.Resolve(parse.GetValue(GlobalOptions.Config), _ => GlobalOptions.LoadConfig(parse));
            using var loggers = CliLogging.Create();
            RecoveryReport report;
            try
            {
                using var hypervisor = LibvirtHypervisor.Open(settings.LibvirtUri);
                report = await new Recovery(hypervisor, new QemuImg(), settings.ToOptions(), loggers.CreateLogger("backupd.recover"))
                    .RecoverAllAsync(parse.GetValue(DryRun), ct);
            }
            catch (LibvirtException e)
            {
                await Console.Error.WriteLineAsync($"backupd recover: {e.Message}");
                return ExitCodes.Failed;
            }
            if (parse.GetValue(GlobalOptions.Json))
            {
                Console.WriteLine(JsonSerializer.Serialize(report, JsonOutput.Options));
            }
            else if (report.Actions.Count == 0)
            {
                Console.WriteLine("nothing to recover: no domain uses a backupd overlay");
            }
            else
            {
                var table = new Table().AddColumn("domain").AddColumn("disk").AddColumn("overlay").AddColumn("action").AddColumn("result");
                foreach (var a in report.Actions)
                    table.AddRow(Markup.Escape(a.Domain), a.Target, Markup.Escape(a.Overlay), Markup.Escape(a.Action),
                        a.Problem is not null ? $"[red]{Markup.Escape(a.Problem)}[/]" : a.Done ? "[green]done[/]" : "would do");
                AnsiConsole.Write(table);
            }
            return report.AllResolved ? ExitCodes.Ok : ExitCodes.NeedsAttention;
        });
        return command;
    }
}
