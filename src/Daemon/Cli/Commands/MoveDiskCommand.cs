using System.CommandLine;
using Backupd.Daemon.Chains;
using Microsoft.Extensions.Logging;

namespace Backupd.Daemon.Cli.Commands;

/// <summary>`backupd move-disk`: one disk's storage to a new file, live (blockcopy + pivot) or offline (qemu-img convert).</summary>
public static class MoveDiskCommand
{
    public static readonly Option<string> To = new("--to") { Description = "The new image file (must not exist)", Required = true, HelpName = "PATH" };
    public static readonly Option<string> Format = new("--format") { Description = "qcow2 or raw", DefaultValueFactory = _ => "qcow2" };
    public static readonly Option<bool> Shallow = new("--shallow") { Description = "Copy only the active layer; the new image sits on the same backing file (qcow2 only)" };
    public static readonly Option<bool> KeepSource = new("--keep-source") { Description = "Keep the old image files after the pivot" };

    public static Command Create()
    {
        var disk = new Option<string>("--disk") { Description = "The disk (target name, e.g. vda)", Required = true, HelpName = "TARGET" };
        var command = new Command("move-disk", "Move one disk's storage to a new file without guest downtime (blockcopy, READY, pivot); the old files go once the pivot is confirmed");
        command.Options.Add(ChainCommand.Domain);
        command.Options.Add(disk);
        command.Options.Add(To);
        command.Options.Add(Format);
        command.Options.Add(Shallow);
        command.Options.Add(ChainCommand.Bandwidth);
        command.Options.Add(KeepSource);
        command.Options.Add(GlobalOptions.Json);
        command.SetAction(async (parse, ct) =>
        {
            var json = parse.GetValue(GlobalOptions.Json);
            using var context = ChainCommand.Open(parse);
            var hv = context.Hypervisor;
            var domain = ChainCommand.FindDomain(hv, parse.GetValue(ChainCommand.Domain));
            var target = ChainCommand.FindDisk(hv, domain, parse.GetValue(disk)!);
            var logger = context.Loggers.CreateLogger("backupd.move-disk");
            var options = new MoveOptions(parse.GetValue(To)!, parse.GetValue(Format)!, parse.GetValue(Shallow), parse.GetValue(ChainCommand.Bandwidth), parse.GetValue(KeepSource));
            var chain = await ChainInspector.ReadDiskAsync(domain, target, await ImageUsage.ScanAsync(hv, ct), null, ct);
            DiskMover.Validate(chain, options); // before the lock and the catalog run: a bad request records nothing

            await using var run = await MaintenanceRun.BeginAsync(context.Settings.StateDirectory, context.Config?.CatalogConnectionString, domain, Storage.Catalog.RunKinds.MoveDisk, "cli", logger, ct);
            MoveResult result;
            try
            {
                result = await ChainCommand.WithProgressAsync(!json && !Console.IsOutputRedirected, $"move {domain.Name} {target.Target}", run,
                    report => new DiskMover(hv, new ChainJournal(context.Settings.StateDirectory), logger).RunAsync(domain, target, chain, options, report, ct));
            }
            catch (Exception e)
            {
                await run.FailAsync(e.Message);
                throw;
            }
            await run.SucceedAsync(result);
            if (json) JsonOutput.Write(new { result.Domain, result.Target, result.Live, result.From, result.To, result.Format, result.Shallow, result.Seconds, result.Deleted, result.Kept, catalogRunId = run.RunId });
            else
            {
                Console.WriteLine($"{result.Target} of {result.Domain} is on {result.To} ({result.Format}) after {result.Seconds:0.0}s ({(result.Live ? "live: blockcopy + pivot" : "offline: qemu-img convert")})");
                foreach (var d in result.Deleted) Console.WriteLine($"deleted {d}");
                foreach (var k in result.Kept) Console.WriteLine($"kept {k}");
            }
            return ExitCodes.Ok;
        });
        return command;
    }
}
