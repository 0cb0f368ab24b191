using System.CommandLine;
using Backupd.Daemon.Chains;
using Backupd.Daemon.Cli.Catalog;
using Backupd.Daemon.Configuration;
using Backupd.Daemon.Libvirt;
using Backupd.Daemon.Runs;
using Backupd.Daemon.Workflow;
using Microsoft.Extensions.Logging;
using Spectre.Console;

namespace Backupd.Daemon.Cli.Commands;

/// <summary>`backupd chain show` and `backupd chain shorten` (docs/chains.md).</summary>
public static class ChainCommand
{
    public static readonly Option<string?> Domain = new("--domain") { Description = "The domain (name or UUID)" };
    public static readonly Option<string?> Disk = new("--disk") { Description = "Only this disk (target name, e.g. vda)", HelpName = "TARGET" };
    public static readonly Option<int?> Depth = new("--depth") { Description = "Shorten to N images (1: one standalone image)", HelpName = "N" };
    public static readonly Option<string?> Into = new("--into") { Description = "Merge into this layer (path or [index] as `chain show` prints): commit writes every layer above it into it; pull makes it the active layer's backing file", HelpName = "LAYER" };
    public static readonly Option<string> Method = new("--method") { Description = "commit (write the upper layers down) or pull (copy the lower layers up into the active layer; never writes a shared template)", DefaultValueFactory = _ => "commit" };
    public static readonly Option<long?> Bandwidth = BackupCommand.RateOption("--bandwidth", "Limit the block job to RATE (50M or 50MiB/s; at least 1M); default unlimited");
    public static readonly Option<bool> DryRun = new("--dry-run") { Description = "Show the plan (and any refusal) without touching anything" };
    public static readonly Option<bool> DeleteMerged = new("--delete-merged") { Description = "Also delete merged-away layers backupd did not create (never one another domain uses)" };

    public static Command Create()
    {
        var command = new Command("chain", "Show and shorten disk image chains (external snapshots, linked clones)");
        command.Subcommands.Add(CreateShow());
        command.Subcommands.Add(CreateShorten());
        return command;
    }

    /// <summary>What every chain command needs: settings, the optional catalog, libvirt, a logger.</summary>
    internal sealed record Context(LiveBackupSettings Settings, DaemonConfig? Config, LibvirtHypervisor Hypervisor, ILoggerFactory Loggers) : IDisposable
    {
        public void Dispose()
        {
            Hypervisor.Dispose();
            Loggers.Dispose();
        }
    }

    internal static Context Open(ParseResult parse)
    {
        DaemonConfig? config = null;
        var settings = LiveBackupSettings.Resolve(parse.GetValue(GlobalOptions.Config), p => config = GlobalOptions.LoadConfig(parse));
        LibvirtHypervisor hypervisor;
        try { hypervisor = LibvirtHypervisor.Open(settings.LibvirtUri); }
        catch (LibvirtException e) { throw new CliFailureException(FailureKind.Failed, $"cannot connect to libvirt at {settings.LibvirtUri}: {e.LibvirtMessage}"); }
        return new Context(settings, config, hypervisor, CliLogging.Create());
    }

    internal static DomainInfo FindDomain(IHypervisor hypervisor, string? name) =>
        name is null ? throw new CliFailureException(FailureKind.Usage, "--domain is required")
        : hypervisor.FindDomain(name) ?? throw new DomainNotFoundException(name);

    internal static DomainDisk FindDisk(IHypervisor hypervisor, DomainInfo domain, string target) =>
        ChainInspector.ChainDisks(hypervisor, domain).FirstOrDefault(d => d.Target == target)
        ?? throw new CliFailureException(FailureKind.NotFound, $"domain {domain.Name} has no file or block disk '{target}' (disks: {string.Join(", ", ChainInspector.ChainDisks(hypervisor, domain).Select(d => d.Target))})");

    // ---- show ----------------------------------------------------------------------------------

    private static Command CreateShow()
    {
        var command = new Command("show", "Every layer of every disk from the active image to the base, with sizes, formats, who else uses it, and warnings");
        command.Options.Add(Domain);
        command.Options.Add(Disk);
        command.Options.Add(GlobalOptions.Json);
        command.SetAction(async (parse, ct) =>
        {
            using var context = Open(parse);
            var hv = context.Hypervisor;
            var domains = parse.GetValue(Domain) is { } name ? [FindDomain(hv, name)] : hv.ListDomains().OrderBy(d => d.Name, StringComparer.Ordinal).ToList();
            var usage = await ImageUsage.ScanAsync(hv, ct);
            var result = new List<DomainChains>();
            foreach (var d in domains)
            {
                try { result.Add(await ChainInspector.InspectAsync(hv, d, usage, null, parse.GetValue(Disk), ct)); }
                catch (LibvirtException e) when (e.Code == LibvirtErrorCodes.NoDomain && parse.GetValue(Domain) is null) { } // undefined meanwhile
            }
            if (parse.GetValue(GlobalOptions.Json))
            {
                JsonOutput.Write(new { domains = result });
                return ExitCodes.Ok;
            }
            foreach (var d in result) PrintChains(d);
            return ExitCodes.Ok;
        });
        return command;
    }

    private static void PrintChains(DomainChains d)
    {
        foreach (var disk in d.Disks)
        {
            var table = new Table().Title($"{Markup.Escape(d.Domain)} {disk.Target} ({(d.Running ? "running" : "shut off")}, depth {disk.Depth})")
                .AddColumns("layer", "path", "format", "virtual", "file", "allocated", "backing format", "also used by");
            foreach (var l in disk.Layers)
            {
                table.AddRow(Markup.Escape(l.Index == 0 ? "[0] active" : l.Index == disk.Depth - 1 ? $"[{l.Index}] base" : $"[{l.Index}]"),
                    Markup.Escape(l.Path) + (l.Missing ? " [red](missing)[/]" : ""), Markup.Escape(l.Format ?? "-"),
                    Size(l.VirtualSize), Size(l.FileSize), Size(l.AllocatedBytes), Markup.Escape(l.BackingFormat ?? "-"),
                    Markup.Escape(string.Join(", ", l.UsedBy.Select(u => $"{u.Domain} ({u.Definition})").Distinct())));
            }
            AnsiConsole.Write(table);
            foreach (var w in disk.Warnings) AnsiConsole.MarkupLine($"[yellow]warning:[/] {Markup.Escape(w)}");
        }
    }

    private static string Size(long? bytes) => bytes is { } b ? CatalogCli.Size(b) : "-";

    // ---- shorten -------------------------------------------------------------------------------

    private static Command CreateShorten()
    {
        var command = new Command("shorten", "Shorten a disk's chain without guest downtime (live blockcommit / blockpull; qemu-img commit / rebase when shut off)");
        command.Options.Add(Domain);
        command.Options.Add(Disk);
        command.Options.Add(Depth);
        command.Options.Add(Into);
        command.Options.Add(Method);
        command.Options.Add(Bandwidth);
        command.Options.Add(DryRun);
        command.Options.Add(DeleteMerged);
        command.Options.Add(GlobalOptions.Json);
        command.SetAction(async (parse, ct) =>
        {
            var json = parse.GetValue(GlobalOptions.Json);
            var method = parse.GetValue(Method) switch
            {
                "commit" => ShortenMethod.Commit,
                "pull" => ShortenMethod.Pull,
                var m => throw new CliFailureException(FailureKind.Usage, $"--method must be commit or pull, got '{m}'"),
            };
            var (depth, into) = (parse.GetValue(Depth), parse.GetValue(Into));
            if (depth is null == (into is null)) throw new CliFailureException(FailureKind.Usage, "give exactly one of --depth N or --into LAYER");
            using var context = Open(parse);
            var hv = context.Hypervisor;
            var domain = FindDomain(hv, parse.GetValue(Domain));
            var targets = parse.GetValue(Disk) is { } t ? [FindDisk(hv, domain, t)] : ChainInspector.ChainDisks(hv, domain);
            if (into is not null && targets.Count != 1) throw new CliFailureException(FailureKind.Usage, "--into needs --disk (the layer belongs to one disk)");
            var logger = context.Loggers.CreateLogger("backupd.chain");
            var options = new ShortenOptions(parse.GetValue(Bandwidth), parse.GetValue(DeleteMerged));
            var report = await ShortenDomainAsync(context, domain, targets, method, depth, into, options, parse.GetValue(DryRun), !json && !Console.IsOutputRedirected, "cli", logger, ct);
            if (json) JsonOutput.Write(report);
            else foreach (var d in report.Disks) Console.WriteLine($"{d.Target}: {(report.DryRun ? "would do " : "")}{d.Plan}{(d.Result is { } r ? $" — done in {r.Seconds:0.0}s, active {r.Active}{Deleted(r)}" : "")}");
            return ExitCodes.Ok;
        });
        return command;
    }

    private static string Deleted(ShortenResult r) =>
        (r.Deleted.Count > 0 ? $"; deleted {string.Join(", ", r.Deleted)}" : "") + (r.Kept.Count > 0 ? $"; kept {string.Join(", ", r.Kept)}" : "");

    public sealed record DiskReport(string Target, string Plan, int DepthBefore, int DepthAfter, ShortenResult? Result);
    public sealed record ShortenReport(string Domain, bool DryRun, bool Live, long? CatalogRunId, IReadOnlyList<DiskReport> Disks);

    /// <summary>
    /// Plans every disk first (a refusal of one changes nothing on any), then runs them one after the other under the
    /// domain's run lock. Also what the daemon runs after a backup when a policy has `chains:`.
    /// </summary>
    internal static async Task<ShortenReport> ShortenDomainAsync(Context context, DomainInfo domain, IReadOnlyList<DomainDisk> targets, ShortenMethod method,
        int? depth, string? into, ShortenOptions options, bool dryRun, bool progressBar, string trigger, ILogger logger, CancellationToken ct)
    {
        var hv = context.Hypervisor;
        var usage = await ImageUsage.ScanAsync(hv, ct);
        var planned = new List<(DomainDisk Disk, DiskChain Chain, ChainPlan Plan)>();
        foreach (var disk in targets)
        {
            var chain = await ChainInspector.ReadDiskAsync(domain, disk, usage, null, ct);
            try { planned.Add((disk, chain, ChainPlanner.Plan(chain, method, depth, into, domain.Uuid))); }
            catch (ChainRefusedException e) when (e.Kind == FailureKind.NothingToDo) { } // nothing to do on this disk
        }
        if (dryRun || planned.Count == 0)
            return new ShortenReport(domain.Name, dryRun, domain.IsActive, null, [.. planned.Select(p => new DiskReport(p.Disk.Target, p.Plan.Describe(p.Chain.Layers), p.Plan.DepthBefore, p.Plan.DepthAfter, null))]);

        await using var run = await MaintenanceRun.BeginAsync(context.Settings.StateDirectory, context.Config?.CatalogConnectionString, domain, Storage.Catalog.RunKinds.Chain, trigger, logger, ct);
        var shortener = new ChainShortener(hv, new ChainJournal(context.Settings.StateDirectory), logger);
        var reports = new List<DiskReport>();
        try
        {
            foreach (var (disk, chain, plan) in planned)
            {
                var result = await WithProgressAsync(progressBar, $"{plan.Method.ToString().ToLowerInvariant()} {domain.Name} {disk.Target}", run,
                    report => shortener.RunAsync(domain, disk, chain, plan, options, report, ct));
                reports.Add(new DiskReport(disk.Target, plan.Describe(chain.Layers), plan.DepthBefore, plan.DepthAfter, result));
            }
        }
        catch (Exception e)
        {
            await run.FailAsync(e.Message);
            throw;
        }
        var final = new ShortenReport(domain.Name, false, domain.IsActive, run.RunId, reports);
        await run.SucceedAsync(final);
        return final;
    }

    /// <summary>A progress bar on a terminal; progress also goes to the catalog run (status).</summary>
    internal static async Task<T> WithProgressAsync<T>(bool bar, string title, MaintenanceRun run, Func<Action<ChainProgress>, Task<T>> body)
    {
        if (!bar) return await body(run.Report);
        return await AnsiConsole.Progress()
            .Columns(new TaskDescriptionColumn(), new ProgressBarColumn(), new PercentageColumn(), new RemainingTimeColumn())
            .StartAsync(async progress =>
            {
                var task = progress.AddTask(Markup.Escape(title), maxValue: 1);
                var result = await body(p =>
                {
                    run.Report(p);
                    task.MaxValue = Math.Max(1, p.Total);
                    task.Value = p.Done;
                });
                task.Value = task.MaxValue;
                return result;
            });
    }
}
