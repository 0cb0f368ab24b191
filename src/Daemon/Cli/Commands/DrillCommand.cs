using System.CommandLine;
using Backupd.Daemon.Cli.Catalog;
using Backupd.Daemon.Drills;
using Backupd.Policies.Loading;
using Spectre.Console;

namespace Backupd.Daemon.Cli.Commands;

/// <summary>
/// `backupd drill --domain D [--point P] [--timeout 5m] [--check CMD] [--trust-saved-xml] [--scratch-dir DIR] [--json]`:
/// restores the point into a throwaway isolated domain on overlays, boots it, waits for the agent, runs the check,
/// records result and RTO, removes everything. Exit 1 when the drill failed (recorded failed).
/// </summary>
public static class DrillCommand
{
    public static readonly Option<string?> Domain = new("--domain") { Description = "Domain whose restore point to drill (name, former name or UUID)" };
    public static readonly Option<string?> Point = new("--point") { Description = "Restore point id (default: the newest)" };
    public static readonly Option<string?> Timeout = new("--timeout") { Description = "Give up when the agent has not answered (and the check not passed) this long after the start: 90s, 5m (default 5m)" };
    public static readonly Option<string?> Check = new("--check") { Description = "Command run in the guest through the agent's guest-exec (/bin/sh -c CMD); the drill passes only if it exits 0" };
    public static readonly Option<bool> TrustSavedXml = new("--trust-saved-xml") { Description = "Boot the saved XML as it is (its kernel, firmware and host files); networks, host devices and displays are removed all the same" };
    public static readonly Option<string?> ScratchDir = new("--scratch-dir") { Description = $"Where the drill's overlays go (default {DrillOptions.DefaultScratchRoot}; QEMU's user must reach it)" };

    public static Command Create()
    {
        var command = new Command("drill", "Restore drill: boot a restore point in a throwaway isolated domain on overlays, wait for its agent, run a check, record the RTO, remove everything");
        foreach (var o in new Option[] { Domain, Point, Timeout, Check, TrustSavedXml, ScratchDir, GlobalOptions.Json }) command.Options.Add(o);
        command.SetAction((parse, ct) => CatalogCli.RunAsync(parse, async (store, config) =>
        {
            var json = parse.GetValue(GlobalOptions.Json);
            var name = parse.GetValue(Domain) ?? throw new CliFailureException(FailureKind.Usage, "drill needs --domain NAME");
            var timeout = DrillOptions.DefaultTimeout;
            if (parse.GetValue(Timeout) is { } t && (!Units.TryParseDuration(t, out timeout) || timeout <= TimeSpan.Zero))
                throw new CliFailureException(FailureKind.Usage, $"--timeout '{t}': expected a duration like 90s or 5m");
            var domain = await CatalogCli.ResolveDomainAsync(store, name, ct);
            var point = await DomainRestoreHandler.SelectPointAsync(store, domain, parse.GetValue(Point), null, ct);
            var options = new DrillOptions(timeout, parse.GetValue(Check), parse.GetValue(TrustSavedXml), parse.GetValue(ScratchDir) is { } s ? Path.GetFullPath(s) : DrillOptions.DefaultScratchRoot);
            using var loggers = CliLogging.Create();
            var service = new DrillService(config.StateDirectory, config.CatalogConnectionString, config.LibvirtUri, loggers.CreateLogger("backupd.drill"));
            var result = await service.RunAsync(store, domain.Uuid, domain.Name, point.Id, options, "manual", ct);
            if (json)
            {
                JsonOutput.Write(new { domain = domain.Name, domainUuid = domain.Uuid, result.PointId, passed = result.Passed, rtoSeconds = result.Rto?.TotalSeconds, result.Failure,
                    result.DrillDomain, result.Backing, startedAfterSeconds = result.StartedAfter?.TotalSeconds, agentAnsweredAfterSeconds = result.AgentAnsweredAfter?.TotalSeconds,
                    result.Agent, result.Check, result.CheckExitCode, result.CheckOutput, result.LeftNothing });
            }
            else if (result.Passed)
            {
                AnsiConsole.MarkupLine($"drill of [bold]{Markup.Escape(domain.Name)}[/] point {Markup.Escape(result.PointId)} [green]passed[/]: RTO {result.Rto!.Value.TotalSeconds:0.0} s " +
                    $"(started after {result.StartedAfter?.TotalSeconds:0.0} s on {Markup.Escape(result.Backing)} images{(result.Check is null ? "" : ", check exited 0")}); {Markup.Escape(result.DrillDomain)} removed");
            }
            else
            {
                AnsiConsole.MarkupLine($"drill of [bold]{Markup.Escape(domain.Name)}[/] point {Markup.Escape(result.PointId)} [red]failed[/]: {Markup.Escape(result.Failure ?? "")}");
            }
            if (!result.LeftNothing)
                await Console.Error.WriteLineAsync($"backupd drill: {result.DrillDomain} or its overlays could not all be removed; `backupd recover` tries again");
            return result.Passed ? ExitCodes.Ok : ExitCodes.Failed;
        }, ct));
        return command;
    }
}
