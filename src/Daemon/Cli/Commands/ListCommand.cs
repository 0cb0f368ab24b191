using System.CommandLine;
using Backupd.Daemon.Cli.Catalog;
using Spectre.Console;

namespace Backupd.Daemon.Cli.Commands;

/// <summary>`backupd list [--domain NAME|UUID] [--since TIME]`: restore points, newest first.</summary>
public static class ListCommand
{
    public static Command Create()
    {
        var domain = new Option<string?>("--domain") { Description = "Only this domain (name, former name or UUID)" };
        var since = new Option<string?>("--since") { Description = "Only points taken at or after TIME (ISO 8601, or a duration ago: 6h, 2d)" };
        var command = new Command("list", "List restore points from the catalog, newest first");
        command.Options.Add(domain);
        command.Options.Add(since);
        command.Options.Add(GlobalOptions.Json);
        command.SetAction((parse, ct) => CatalogCli.RunAsync(parse, async (store, _) =>
        {
            var sinceValue = parse.GetValue(since) is { } s ? CatalogCli.ParseTime(s, "--since") : (DateTimeOffset?)null;
            Guid? uuid = parse.GetValue(domain) is { } d ? (await CatalogCli.ResolveDomainAsync(store, d, ct)).Uuid : null;
            var points = await store.ListPointsAsync(uuid, sinceValue, ct);
            if (parse.GetValue(GlobalOptions.Json))
            {
                JsonOutput.Write(points);
                return ExitCodes.Ok;
            }
            if (points.Count == 0)
            {
                CatalogCli.Out.WriteLine("no restore points");
                return ExitCodes.Ok;
            }
            var drills = await store.LastDrillsAsync(points.Select(p => p.Id).ToList(), ct);
            var table = new Table().AddColumns("point", "domain", "taken (UTC)", "disks", "files", "stored", "consistency", "read", "run", "last drill", "copies");
            foreach (var p in points)
            {
                table.AddRow(Markup.Escape(p.Id), Markup.Escape(p.DomainName), CatalogCli.Time(p.CreatedAt), p.Disks.ToString(), p.Files.ToString(),
                    CatalogCli.Size(p.TotalFileSize), Markup.Escape(p.Consistency ?? "-"), Markup.Escape(p.ReadMode ?? "-"), p.RunId?.ToString() ?? "-", Markup.Escape(DrillText(drills.GetValueOrDefault(p.Id))),
                    Markup.Escape(p.Copies.Length == 0 ? "-" : string.Join(", ", p.Copies)));
            }
            CatalogCli.Out.Write(table);
            return ExitCodes.Ok;
        }, ct));
        return command;
    }

    /// <summary>"passed, RTO 12.3s (UTC time)", "failed (UTC time)", or "-" when never drilled.</summary>
    internal static string DrillText(Storage.Catalog.RunRow? drill) => drill switch
    {
        null => "-",
        { State: "succeeded" } d => $"passed, RTO {CatalogCli.Duration(d.Rto)} ({CatalogCli.Time(d.StartedAt)})",
        var d => $"{(d.State == "failed" ? "failed" : d.State)} ({CatalogCli.Time(d.StartedAt)})",
    };
}
