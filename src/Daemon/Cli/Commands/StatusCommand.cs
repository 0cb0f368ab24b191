using System.CommandLine;
using Backupd.Daemon.Cli.Catalog;
using Spectre.Console;

namespace Backupd.Daemon.Cli.Commands;

/// <summary>`backupd status`: runs in progress with percentage, and the last result per domain.</summary>
public static class StatusCommand
{
    public static Command Create()
    {
        var command = new Command("status", "Show runs in progress (step, percentage) and the last result of every domain");
        command.Options.Add(GlobalOptions.Json);
        command.SetAction((parse, ct) => CatalogCli.RunAsync(parse, async (store, _) =>
        {
            var status = await store.GetStatusAsync(ct);
            if (parse.GetValue(GlobalOptions.Json))
            {
                JsonOutput.Write(status);
                return ExitCodes.Ok;
            }
            if (status.Running.Count == 0)
            {
                CatalogCli.Out.WriteLine("no run is in progress");
            }
            else
            {
                var running = new Table().Title("running").AddColumns("run", "kind", "domain", "step", "progress", "started (UTC)", "on");
                foreach (var r in status.Running)
                {
                    var progress = r.Percent is { } pct ? $"{pct:0.0}% of {CatalogCli.Size(r.ProgressTotal!.Value)}" : CatalogCli.Size(r.ProgressBytes);
                    running.AddRow(r.Id.ToString(), Markup.Escape(r.Kind), Markup.Escape(r.DomainName), Markup.Escape(r.Step), progress, CatalogCli.Time(r.StartedAt), Markup.Escape($"{r.Host} pid {r.Pid}"));
                }
                CatalogCli.Out.Write(running);
            }
            if (status.LastPerDomain.Count > 0)
            {
                var last = new Table().Title("last result per domain").AddColumns("domain", "run", "kind", "result", "finished (UTC)", "point", "error");
                foreach (var r in status.LastPerDomain)
                {
                    var state = r.State switch { "succeeded" => "[green]succeeded[/]", "failed" => "[red]failed[/]", var s => $"[yellow]{Markup.Escape(s)}[/]" };
                    var kind = r.Rto is { } rto ? $"{r.Kind} (RTO {CatalogCli.Duration(rto)})" : r.Kind;
                    last.AddRow(new Markup(Markup.Escape(r.DomainName)), new Text(r.Id.ToString()), new Text(kind), new Markup(state),
                        new Text(r.FinishedAt is { } f ? CatalogCli.Time(f) : "-"), new Text(r.RestorePointId ?? r.PointId ?? "-"), new Text(r.Error ?? ""));
                }
                CatalogCli.Out.Write(last);
            }
            return ExitCodes.Ok;
        }, ct));
        return command;
    }
}
