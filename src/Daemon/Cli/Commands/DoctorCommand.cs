using System.CommandLine;
using System.Text.Json;
using Backupd.Daemon.Diagnostics;
using Spectre.Console;

namespace Backupd.Daemon.Cli.Commands;

/// <summary>`backupd doctor`: checks every component a backup needs; non-zero exit when one is missing.</summary>
public static class DoctorCommand
{
    public static Command Create()
    {
        var command = new Command("doctor", "Check libvirt, qemu-img, the catalog and the directories; exit 1 if something is missing");
        command.Options.Add(GlobalOptions.Json);
        command.SetAction(async (parse, ct) =>
        {
            var config = GlobalOptions.LoadConfig(parse);
            var results = await EnvironmentChecks.RunAllAsync(config, ct);
            if (parse.GetValue(GlobalOptions.Json))
            {
                Console.WriteLine(JsonSerializer.Serialize(results, JsonOutput.Options));
            }
            else
            {
                var table = new Table().AddColumn("check").AddColumn("status").AddColumn("detail");
                foreach (var r in results)
                {
                    var detail = r.Ok || r.Fix is null ? r.Detail : $"{r.Detail}\nfix: {r.Fix}";
                    table.AddRow(Markup.Escape(r.Name), r.Ok ? "[green]ok[/]" : "[red]MISSING[/]", Markup.Escape(detail));
                }
                AnsiConsole.Write(table);
            }
            return results.All(r => r.Ok) ? ExitCodes.Ok : ExitCodes.Failed;
        });
        return command;
    }
}
