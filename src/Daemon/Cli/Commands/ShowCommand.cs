using System.CommandLine;
using Backupd.Daemon.Cli.Catalog;
using Spectre.Console;

namespace Backupd.Daemon.Cli.Commands;

/// <summary>`backupd show POINT`: one restore point in detail.</summary>
public static class ShowCommand
{
    public static Command Create()
    {
        var point = new Argument<string>("POINT") { Description = "Restore point id (from `backupd list`)" };
        var xml = new Option<bool>("--xml") { Description = "Print only the domain XML saved with the point" };
        var command = new Command("show", "Show one restore point: disks, chain files, digests, run statistics, last verification");
        command.Arguments.Add(point);
        command.Options.Add(xml);
        command.Options.Add(GlobalOptions.Json);
        command.SetAction((parse, ct) => CatalogCli.RunAsync(parse, async (store, _) =>
        {
            var id = parse.GetValue(point)!;
            var detail = await store.GetPointAsync(id, ct)
                ?? throw new CliFailureException(FailureKind.NotFound, $"no restore point '{id}' in the catalog (`backupd list` shows them)");
            if (parse.GetValue(xml))
            {
                if (detail.DomainXml is null) throw new CliFailureException(FailureKind.NotFound, $"restore point '{id}' has no saved domain XML");
                Console.WriteLine(detail.DomainXml);
                return ExitCodes.Ok;
            }
            if (parse.GetValue(GlobalOptions.Json))
            {
                JsonOutput.Write(detail);
                return ExitCodes.Ok;
            }
            var p = detail.Point;
            var grid = new Grid().AddColumn().AddColumn();
            void Row(string k, string v) => grid.AddRow(new Text(k), new Text(v));
            Row("point", p.Id);
            Row("domain", $"{p.DomainName} ({p.DomainUuid})");
            Row("taken", CatalogCli.Time(p.CreatedAt));
            Row("repository", p.Repository);
            Row("consistency", p.Consistency ?? "-");
            Row("domain XML", detail.DomainXml is null ? "not saved" : $"{detail.DomainXml.Length} characters (--xml prints it)");
            if (detail.Run is { } r)
            {
                Row("run", $"{r.Id} {r.State}, {r.Trigger} by {r.RequestedBy} on {r.Host} (pid {r.Pid}){(r.PolicyName is null ? "" : $", policy {r.PolicyName}")}");
                Row("run time", $"{CatalogCli.Time(r.StartedAt)} .. {(r.FinishedAt is { } f ? CatalogCli.Time(f) : "-")}");
                Row("bytes", $"read {CatalogCli.Size(r.BytesRead)}, written {CatalogCli.Size(r.BytesWritten)}");
                Row("timings", $"copy {CatalogCli.Duration(r.CopyTime)}, overlay lived {CatalogCli.Duration(r.OverlayLifetime)}, commit {CatalogCli.Duration(r.CommitTime)}");
            }
            else
            {
                Row("run", "none recorded (point rebuilt from the repository)");
            }
            Row("copies", detail.Copies is { Count: > 0 } copies
                ? string.Join("; ", copies.Select(c => $"{c.Target} (run {c.RunId?.ToString() ?? "-"}, {CatalogCli.Time(c.CopiedAt)})"))
                : "none recorded");
            var drill = (await store.LastDrillsAsync([p.Id], ct)).GetValueOrDefault(p.Id);
            Row("last drill", drill is null ? "never" : $"{ListCommand.DrillText(drill)}{(drill.Error is { } de ? $": {de}" : "")}");
            Row("last verify", detail.LastVerify is { } v ? $"{(v.Ok ? "ok" : "DAMAGED")} at {CatalogCli.Time(v.At)}: {v.Detail}" : "never");
            CatalogCli.Out.Write(grid);
            var files = new Table().AddColumns("disk", "depth", "file key", "format", "virtual", "stored", "source", "backing file", "digest");
            foreach (var f in detail.Files)
            {
                files.AddRow(Markup.Escape(f.Disk), f.Depth.ToString(), Markup.Escape(f.FileKey), Markup.Escape(f.Format), CatalogCli.Size(f.VirtualSize),
                    CatalogCli.Size(f.FileSize), Markup.Escape(f.SourcePath), Markup.Escape(f.BackingFile ?? "-"), Markup.Escape(f.Digest));
            }
            CatalogCli.Out.Write(files);
            // Changed-block tracking: how each file was read (the catalog's columns of migration 0003; none for older points).
            foreach (var f in detail.Files.Where(f => f.ReadMode is not null))
            {
                CatalogCli.Out.WriteLine($"{f.FileKey}: {f.ReadMode}, read {CatalogCli.Size(f.BytesRead)} of {CatalogCli.Size(f.FileSize)}" +
                    (f.FullReadReason is { } why ? $"; full read because {why}" : "") +
                    (f.ReadMode == Storage.ChangedBlocks.ReadModes.SafetyNet ? $"; {f.CleanButChanged} block(s) changed although the bitmap called them clean" : ""));
            }
            return ExitCodes.Ok;
        }, ct));
        return command;
    }
}
