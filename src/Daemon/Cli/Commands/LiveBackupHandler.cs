using System.CommandLine;
using System.Text.Json;
using System.Text.Json.Serialization;
using Backupd.Daemon.Libvirt;
using Backupd.Daemon.Workflow;
using Microsoft.Extensions.Logging;
using Spectre.Console;

namespace Backupd.Daemon.Cli.Commands;

/// <summary>`backupd backup --domain NAME --to DIR`: recovery of the domain first, then the live backup workflow, in-process.</summary>
public static class LiveBackupHandler
{
    public static async Task<int> RunAsync(ParseResult parse, CancellationToken ct)
    {
        var json = parse.GetValue(GlobalOptions.Json);
        var domainName = parse.GetValue(BackupCommand.Domain)!;
        var to = parse.GetValue(BackupCommand.To);
        if (string.IsNullOrWhiteSpace(to))
            return Fail(ExitCodes.UsageOrConfig, "--domain needs --to REPOSITORY_DIR (where the restore point goes)");

        var settings = LiveBackupSettings.Resolve(parse.GetValue(GlobalOptions.Config), _ => GlobalOptions.LoadConfig(parse));
        var options = RepositoryRunOptions.Apply(parse, BackupCommand.WithBandwidth(parse, settings.ToOptions()));
        using var loggers = CliLogging.Create();
        var logger = loggers.CreateLogger("backupd.backup");
        var request = new BackupRequest(domainName, parse.GetValue(BackupCommand.Disk) ?? [], parse.GetValue(BackupCommand.ExcludeDisk) ?? [], parse.GetValue(BackupCommand.Quiesce));

        LibvirtHypervisor hypervisor;
        try { hypervisor = LibvirtHypervisor.Open(settings.LibvirtUri); }
        catch (LibvirtException e) { return Fail(ExitCodes.Failed, $"cannot connect to libvirt at {settings.LibvirtUri}: {e.LibvirtMessage}"); }
        using var signals = new SignalGuard(ct);
        ct = signals.Token;
        using (hypervisor)
        {
            var images = new QemuImg();
            // A refusal (BackupRefusedException) or a libvirt error goes up to CommandTree, which reports it with its kind.
            // A run that died earlier may have left this domain on an overlay: fix that first.
            var domain = hypervisor.FindDomain(domainName);
            if (domain is not null)
            {
                var recovery = await new Recovery(hypervisor, images, options, logger).RecoverDomainAsync(domain.Uuid, dryRun: false, ct);
                if (!recovery.AllResolved)
                    return Fail(ExitCodes.NeedsAttention, $"'{domainName}' is still on an overlay from an earlier run and recovery could not fix it; see 'backupd recover' and docs/operations.md");
            }

            BackupResult result;
            using var target = BackupTargets.Open(to, options);
            if (!json && !Console.IsOutputRedirected)
            {
                result = await AnsiConsole.Progress()
                    .Columns(new TaskDescriptionColumn(), new ProgressBarColumn(), new PercentageColumn(), new TransferSpeedColumn(), new RemainingTimeColumn())
                    .StartAsync(async context =>
                    {
                        var bar = context.AddTask($"backup {Markup.Escape(domainName)}", maxValue: 1);
                        var workflow = new BackupWorkflow(hypervisor, images, target, options, logger)
                        {
                            OnProgress = p =>
                            {
                                bar.MaxValue = Math.Max(1, p.TotalBytes);
                                bar.Value = p.TotalBytesDone;
                            },
                        };
                        var r = await workflow.RunAsync(request, ct);
                        bar.Value = bar.MaxValue;
                        return r;
                    });
            }
            else
            {
                result = await new BackupWorkflow(hypervisor, images, target, options, logger).RunAsync(request, ct);
            }

            if (json) Console.WriteLine(JsonSerializer.Serialize(result, JsonOptions));
            else PrintHuman(result);
            if (result.Outcome == RunOutcome.Succeeded && signals.LateSignalNote(result.RestorePointId) is { } note) await Console.Error.WriteLineAsync(note);
            return result.Outcome switch
            {
                RunOutcome.Succeeded => ExitCodes.Ok,
                RunOutcome.NeedsAttention => ExitCodes.NeedsAttention,
                _ => ExitCodes.Failed,
            };
        }
    }

    /// <summary>Documented in docs/cli.md (live backup section).</summary>
    public static int ExitFor(RefusalKind kind) => kind switch
    {
        RefusalKind.DomainNotFound => ExitCodes.NotFound,
        RefusalKind.BadRequest or RefusalKind.TargetUnavailable => ExitCodes.UsageOrConfig,
        RefusalKind.Busy => ExitCodes.Busy,
        RefusalKind.NeedsRecovery => ExitCodes.NeedsAttention,
        _ => ExitCodes.Failed,
    };

    /// <summary>Ends the command; <see cref="CommandTree"/> prints the message (and the JSON error object with --json).</summary>
    private static int Fail(int code, string message) => throw new Catalog.CliFailureException(code, message);

    /// <summary>The shared JSON style, with durations as seconds (numbers scripts can compare).</summary>
    internal static readonly JsonSerializerOptions JsonOptions = new(JsonOutput.Options)
    {
        Encoder = System.Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping,
        Converters = { new SecondsConverter() },
    };

    private sealed class SecondsConverter : JsonConverter<TimeSpan>
    {
        public override TimeSpan Read(ref Utf8JsonReader reader, Type typeToConvert, JsonSerializerOptions options) => TimeSpan.FromSeconds(reader.GetDouble());
        public override void Write(Utf8JsonWriter writer, TimeSpan value, JsonSerializerOptions options) => writer.WriteNumberValue(Math.Round(value.TotalSeconds, 3));
    }

    private static void PrintHuman(BackupResult r)
    {
        var color = r.Outcome switch { RunOutcome.Succeeded => "green", RunOutcome.Failed => "red", _ => "red bold" };
        AnsiConsole.MarkupLine($"run [bold]{r.RunId}[/] of [bold]{Markup.Escape(r.Domain)}[/]: [{color}]{Kebab(r.Outcome)}[/]" +
            (r.Consistency is { } consistency ? $", {Kebab(consistency)}" : ""));
        if (r.Error is not null) AnsiConsole.MarkupLine($"error: {Markup.Escape(r.Error)}");
        if (r.Quiesce is { Noteworthy: true } q)
            AnsiConsole.MarkupLine($"quiesce {q.Requested}: {q.Outcome}; {Markup.Escape(q.Reason ?? "")}{(q.Thaw is null ? "" : $"; guest file systems {Markup.Escape(q.Thaw)}")}");
        if (r.RestorePointId is not null) AnsiConsole.MarkupLine($"restore point: {Markup.Escape(r.RestorePointId)}");
        AnsiConsole.MarkupLine($"copy {Seconds(r.CopyTime)}, overlay lifetime {(r.OverlayLifetime is { } o ? Seconds(o) : "-")}, commit {(r.CommitTime is { } c ? Seconds(c) : "-")}, total {Seconds(r.Duration)}");
        var table = new Table().AddColumn("disk").AddColumn("files").AddColumn("read").AddColumn("written").AddColumn("copy").AddColumn("commit").AddColumn("back on base");
        foreach (var d in r.Disks)
        {
            table.AddRow(d.Target, string.Join(", ", d.Files.Select(f => f.FileKey)), Mib(d.BytesRead), Mib(d.BytesWritten), Seconds(d.CopyTime),
                d.CommitTime is { } t ? Seconds(t) : "-", d.BackOnBase ? "yes" : $"[red]NO[/] {Markup.Escape(d.Problem ?? "")}");
        }
        AnsiConsole.Write(table);
        foreach (var s in r.Skipped) AnsiConsole.MarkupLine($"skipped {s.Target}: {Markup.Escape(s.Reason)}");
        PrintHealing(r);
    }

    /// <summary>The mirror scrub's findings (docs/repository-format.md, "Mirror scrub"), one line per file that had any.</summary>
    internal static void PrintHealing(BackupResult r)
    {
        foreach (var f in r.Disks.SelectMany(d => d.Files).Where(f => f.Healing is not null))
            AnsiConsole.MarkupLine($"[yellow]{Markup.Escape(f.Healing!)}[/]");
    }

    private static string Kebab<T>(T value) where T : struct, Enum => JsonNamingPolicy.KebabCaseLower.ConvertName(value.ToString());

    private static string Seconds(TimeSpan t) => $"{t.TotalSeconds:0.000}s";
    private static string Mib(long bytes) => $"{bytes / 1048576.0:0.0} MiB";
}
