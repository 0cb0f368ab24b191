using System.CommandLine;
using System.Text.Json;
using System.Text.Json.Serialization;
using Backupd.Daemon.Runs;
using Backupd.Daemon.Workflow;
using Microsoft.Extensions.Logging;
using Spectre.Console;

namespace Backupd.Daemon.Cli.Commands;

/// <summary>
/// `backupd backup --domain NAME --to DIR`, both forms: parse the options into a <see cref="BackupSpec"/>, run it
/// through <see cref="BackupService"/> (with a progress bar on a terminal), print the result. Without a catalog
/// (`--no-catalog` or no configuration) the run is repository-only; <see cref="CatalogBackupHandler"/> adds the catalog.
/// </summary>
public static class LiveBackupHandler
{
    /// <summary>Repository-only: the configuration's settings when one exists, the defaults otherwise.</summary>
    public static Task<int> RunAsync(ParseResult parse, CancellationToken ct)
    {
        var to = RequireTo(parse);
        var settings = LiveBackupSettings.Resolve(parse.GetValue(GlobalOptions.Config), _ => GlobalOptions.LoadConfig(parse));
        return RunAsync(parse, SpecFor(parse, settings, to, catalog: null), ct);
    }

    /// <summary>--to is required with --domain (checked before anything else is read).</summary>
    internal static string RequireTo(ParseResult parse)
    {
        var to = parse.GetValue(BackupCommand.To);
        return string.IsNullOrWhiteSpace(to)
            ? throw new CliFailureException(FailureKind.Usage, "--domain needs --to REPOSITORY_DIR (where the restore point goes)")
            : to;
    }

    /// <summary>The command line as a spec: disks, quiesce, bandwidth, reader wait and scrub cycle over the settings.</summary>
    internal static BackupSpec SpecFor(ParseResult parse, LiveBackupSettings settings, string to, CatalogRecording? catalog) =>
        BackupSpec.ForCommand(settings, parse.GetValue(BackupCommand.Domain)!, to, o => RepositoryRunOptions.Apply(parse, BackupCommand.WithBandwidth(parse, o)), catalog) with
        {
            IncludeDisks = parse.GetValue(BackupCommand.Disk) ?? [],
            ExcludeDisks = parse.GetValue(BackupCommand.ExcludeDisk) ?? [],
            Quiesce = parse.GetValue(BackupCommand.Quiesce),
            Read = new ReadRequest(Full: parse.GetValue(BackupCommand.Full)),
        };

    /// <summary>Runs the spec and prints its result; a failed run prints the workflow's result, then goes up to <see cref="CommandTree"/>.</summary>
    internal static async Task<int> RunAsync(ParseResult parse, BackupSpec spec, CancellationToken ct)
    {
        var json = parse.GetValue(GlobalOptions.Json);
        using var loggers = CliLogging.Create();
        var service = new BackupService(loggers);
        // A signal cancels the copy; the workflow still merges the overlays back, then the run is recorded.
        using var signals = new SignalGuard(ct);
        BackupRun run;
        try
        {
            if (json || Console.IsOutputRedirected)
            {
                run = await service.RunAsync(spec, null, signals.Token);
            }
            else
            {
                run = await AnsiConsole.Progress()
                    .Columns(new TaskDescriptionColumn(), new ProgressBarColumn(), new PercentageColumn(), new TransferSpeedColumn(), new RemainingTimeColumn())
                    .StartAsync(async context =>
                    {
                        var bar = context.AddTask($"backup {Markup.Escape(spec.Domain)}", maxValue: 1);
                        var commit = new CommitBar(context, $"commit {Markup.Escape(spec.Domain)}");
                        var r = await service.RunAsync(spec, p =>
                        {
                            bar.MaxValue = Math.Max(1, p.TotalBytes);
                            bar.Value = p.TotalBytesDone;
                        }, signals.Token, commit);
                        bar.Value = bar.MaxValue;
                        commit.Complete();
                        return r;
                    });
            }
        }
        catch (BackupFailedException e) when (e.Result is not null)
        {
            // The workflow's own result says what happened per disk: print it, then CommandTree reports the failure (no JSON error object: stdout has the result).
            Print(json, spec.Catalog is not null, e.Result, e.CatalogRunId, null);
            throw;
        }
        Print(json, spec.Catalog is not null, run.Workflow!, run.CatalogRunId, run);
        if (signals.LateSignalNote(run.Point.PointId) is { } note) await Console.Error.WriteLineAsync(note);
        return ExitCodes.Ok;
    }

    /// <summary>
    /// The merge-back's own bar (QEMU's block-job cur/end), added when the commit step reports its first position:
    /// a long commit moves a bar instead of leaving the copy's at 100 %.
    /// </summary>
    internal sealed class CommitBar(ProgressContext context, string label) : IProgress<RunProgress>
    {
        private ProgressTask? _task;

        public void Report(RunProgress value)
        {
            if (value is not { Step: "commit", TotalBytes: > 0 }) return;
            _task ??= context.AddTask(label, maxValue: 1);
            _task.MaxValue = value.TotalBytes.Value;
            _task.Value = value.Bytes;
        }

        public void Complete()
        {
            if (_task is not null) _task.Value = _task.MaxValue;
        }
    }

    /// <summary>The workflow's result as JSON (plus catalogRunId when the catalog records the run) or for a human.</summary>
    private static void Print(bool json, bool recorded, BackupResult result, long? catalogRunId, BackupRun? run)
    {
        if (json && recorded) CatalogBackupHandler.Write(result, catalogRunId);
        else if (json) Console.WriteLine(JsonSerializer.Serialize(result, JsonOptions));
        else if (recorded) CatalogBackupHandler.PrintSummary(result, catalogRunId, run);
        else PrintHuman(result);
    }

    /// <summary>
    /// The shared JSON style, with durations as seconds (numbers scripts can compare). The result's metadata is
    /// source-generated (no reflection serializer to build and JIT at the end of a one-shot CLI backup); the
    /// converters here still apply to it.
    /// </summary>
    internal static readonly JsonSerializerOptions JsonOptions = new(JsonOutput.Options)
    {
        Encoder = System.Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping,
        Converters = { new SecondsConverter() },
        TypeInfoResolver = System.Text.Json.Serialization.Metadata.JsonTypeInfoResolver.Combine(BackupResultJsonContext.Default, new System.Text.Json.Serialization.Metadata.DefaultJsonTypeInfoResolver()),
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

    /// <summary>
    /// The mirror scrub's findings (docs/repository-format.md, "Mirror scrub"), one line per file that had any; then how each disk
    /// was read (changed-block tracking: incremental, or full with the reason, and a safety net's count).
    /// </summary>
    internal static void PrintHealing(BackupResult r)
    {
        foreach (var d in r.Disks.Where(d => d.Files.Count > 0))
        {
            var net = d.ReadMode == Storage.ChangedBlocks.ReadModes.SafetyNet ? $", {d.CleanButChanged} block(s) changed although the bitmap called them clean" : "";
            var line = $"{d.Target}: {d.ReadMode} read{net}{(d.FullReadReason is { } why ? $" ({why})" : "")}";
            AnsiConsole.MarkupLine(d.CleanButChanged > 0 ? $"[red]{Markup.Escape(line)}[/]" : Markup.Escape(line));
        }
        foreach (var f in r.Disks.SelectMany(d => d.Files).Where(f => f.Healing is not null))
            AnsiConsole.MarkupLine($"[yellow]{Markup.Escape(f.Healing!)}[/]");
    }

    private static string Kebab<T>(T value) where T : struct, Enum => JsonNamingPolicy.KebabCaseLower.ConvertName(value.ToString());

    private static string Seconds(TimeSpan t) => $"{t.TotalSeconds:0.000}s";
    private static string Mib(long bytes) => $"{bytes / 1048576.0:0.0} MiB";
}

[JsonSerializable(typeof(BackupResult))]
internal sealed partial class BackupResultJsonContext : JsonSerializerContext;
