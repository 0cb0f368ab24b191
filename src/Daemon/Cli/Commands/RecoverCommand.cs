using System.CommandLine;
using System.Text.Json;
using Backupd.Daemon.Configuration;
using Backupd.Daemon.Images;
using Backupd.Daemon.Libvirt;
using Backupd.Daemon.Runs;
using Backupd.Daemon.Workflow;
using Backupd.Storage.Catalog;
using Microsoft.Extensions.Logging;
using Spectre.Console;

namespace Backupd.Daemon.Cli.Commands;

/// <summary>
/// `backupd recover [--domain D] [--dry-run]`: bring every domain (or D) back onto its base images after a run that
/// died, then, with a daemon configuration, finish that run's catalog state (kept records first, the rest `interrupted`).
/// </summary>
public static class RecoverCommand
{
    public static readonly Option<bool> DryRun = new("--dry-run") { Description = "Only report what would be done" };

    public static readonly Option<string?> Domain = new("--domain")
    {
        Description = "Only this domain (name or UUID; also a transient domain that is gone, by its journaled name); default every domain",
    };

    /// <summary>What the catalog part of a recovery did, or why it could not.</summary>
    private sealed record CatalogOutcome(IReadOnlyList<object> Recorded, IReadOnlyList<long> Interrupted, string? Error);

    public static Command Create()
    {
        var command = new Command("recover", "Merge back overlays left by an interrupted backup (all domains, or --domain) and finish its catalog run; exit 6 if one cannot be fixed");
        command.Options.Add(Domain);
        command.Options.Add(DryRun);
        command.Options.Add(GlobalOptions.Json);
        command.SetAction(async (parse, ct) =>
        {
            DaemonConfig? config = null;
            var settings = LiveBackupSettings.Resolve(parse.GetValue(GlobalOptions.Config), _ => config = GlobalOptions.LoadConfig(parse));
            var dryRun = parse.GetValue(DryRun);
            var json = parse.GetValue(GlobalOptions.Json);
            using var loggers = CliLogging.Create();
            var logger = loggers.CreateLogger("backupd.recover");
            RecoveryReport report;
            string? onlyUuid = null;
            try
            {
                using var hypervisor = LibvirtHypervisor.Open(settings.LibvirtUri);
                var recovery = new Recovery(hypervisor, new QemuImg(), settings.ToOptions(), logger);
                if (parse.GetValue(Domain) is { } domain)
                {
                    onlyUuid = recovery.ResolveDomain(domain);
                    if (onlyUuid is null)
                        return await FailAsync(json, ExitCodes.NotFound, $"no domain '{domain}' on this hypervisor (by name or UUID) and no unfinished run of it in the journal");
                }
                // On a terminal each live merge back gets a bar (QEMU's block-job cur/end): a large overlay takes minutes.
                report = await TerminalProgress.WithCommitBarsAsync(json || dryRun, onProgress =>
                {
                    var reporting = new Recovery(hypervisor, new QemuImg(), settings.ToOptions(), logger) { OnCommitProgress = onProgress };
                    return onlyUuid is null ? reporting.RecoverAllAsync(dryRun, ct) : reporting.RecoverDomainAsync(onlyUuid, dryRun, ct);
                });
                // Interrupted chain operations (shorten, move-disk) too: each ends finished, pivoted or aborted.
                var chains = await new Chains.ChainRecovery(hypervisor, settings.ToOptions(), logger).RecoverAsync(onlyUuid, dryRun, ct);
                if (chains.Count > 0) report = new RecoveryReport([.. report.Actions, .. chains]);
                // Drill domains and overlays of drills that died; instant restores whose pull was interrupted are resumed.
                var drills = await new Drills.DrillRecovery(hypervisor, new Drills.DrillJournal(settings.StateDirectory), logger).RecoverAsync(dryRun, ct);
                if (drills.Count > 0) report = new RecoveryReport([.. report.Actions, .. drills]);
            }
            catch (LibvirtException e)
            {
                return await FailAsync(json, ExitCodes.Failed, e.Message);
            }

            // The guest first, then the records: runs of processes that ended get their final state.
            CatalogOutcome? catalog = null;
            if (config is not null && !dryRun)
                catalog = await FinishRunsAsync(config, onlyUuid is null ? null : Guid.Parse(onlyUuid), logger, ct);

            if (json)
            {
                var node = JsonSerializer.SerializeToNode(report, JsonOutput.Options)!.AsObject();
                node["catalog"] = catalog is null ? null : JsonSerializer.SerializeToNode(catalog, JsonOutput.Options);
                Console.WriteLine(node.ToJsonString(JsonOutput.Options));
            }
            else
            {
                PrintHuman(report, dryRun);
                if (catalog is { Error: null })
                {
                    foreach (var r in catalog.Recorded) Console.WriteLine($"catalog: {r}");
                    if (catalog.Interrupted.Count > 0) Console.WriteLine($"catalog: run(s) {string.Join(", ", catalog.Interrupted)} of processes that no longer exist are now interrupted");
                }
            }
            if (catalog?.Error is { } error) await Console.Error.WriteLineAsync($"backupd recover: {error}");
            return report.AllResolved ? ExitCodes.Ok : ExitCodes.NeedsAttention;
        });
        return command;
    }

    private static void PrintHuman(RecoveryReport report, bool dryRun)
    {
        if (report.Actions.Count == 0)
        {
            Console.WriteLine("nothing to recover: no domain uses a backupd overlay");
            return;
        }
        var table = new Table().AddColumn("domain").AddColumn("disk").AddColumn("overlay").AddColumn("action").AddColumn("result");
        foreach (var a in report.Actions)
            table.AddRow(Markup.Escape(a.Domain), a.Target, Markup.Escape(a.Overlay), Markup.Escape(a.Action),
                a.Problem is not null ? $"[red]{Markup.Escape(a.Problem)}[/]" : a.Done ? "[green]done[/]" : dryRun ? "would do" : "left alone");
        AnsiConsole.Write(table);
    }

    /// <summary>Kept records and dead processes' runs; an unreachable catalog is reported, not fatal (the domains are what recover is for).</summary>
    private static async Task<CatalogOutcome> FinishRunsAsync(DaemonConfig config, Guid? onlyDomain, ILogger logger, CancellationToken ct)
    {
        try
        {
            await using var store = new CatalogStore(config.CatalogConnectionString);
            var done = await RunRecordFinisher.FinishLeftOversAsync(store, new PendingRunRecords(config.StateDirectory), ProcessIdentity.Current, onlyDomain, logger, ct);
            return new CatalogOutcome(
                [.. done.Recorded.Select(r => new { r.RunId, domain = r.DomainName, r.State, pointId = r.Point?.PointId, text = $"run {r.RunId} of {r.DomainName} recorded as {r.State}{(r.Point is { } p ? $" with restore point {p.PointId}" : "")}" })],
                done.Interrupted, null);
        }
        catch (Exception e) when (RunRecordFinisher.IsOutage(e))
        {
            return new CatalogOutcome([], [], $"the catalog at {CatalogBackupHandler.Describe(config.CatalogConnectionString)} is unreachable ({e.Message}): run states were not finished; " +
                "run `backupd recover` again when it is back (runs it kept are in the state directory's catalog-pending), or `backupd catalog rebuild --repository DIR` for their restore points");
        }
    }

    private static async Task<int> FailAsync(bool json, int code, string message)
    {
        await Console.Error.WriteLineAsync($"backupd recover: {message}");
        if (json) JsonOutput.Write(new { error = message, exitCode = code });
        return code;
    }
}
