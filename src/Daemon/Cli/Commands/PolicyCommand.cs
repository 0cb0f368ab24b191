using System.CommandLine;
using System.Globalization;
using Backupd.Daemon.Scheduling;
using Backupd.Policies.Loading;
using Backupd.Policies.Model;

namespace Backupd.Daemon.Cli.Commands;

/// <summary>`backupd policy check [FILES]`: validates policy files and shows what each policy will do.</summary>
public static class PolicyCommand
{
    /// <summary>
    /// Lists the domain names of a libvirt URI, or returns null when libvirt cannot be reached
    /// (the output then says domains are resolved at run time).
    /// </summary>
    internal static Func<string, IReadOnlyList<string>?> ListDomains { get; set; } = LibvirtDomainSource.TryList;

    private static readonly Argument<string[]> Files = new("FILES")
    {
        Description = "Policy files or directories (default: the configuration's policies-directory)",
        Arity = ArgumentArity.ZeroOrMore,
    };

    private static readonly Option<DateTimeOffset?> After = new("--after")
    {
        Description = "Compute fire times after this instant (ISO 8601) instead of now",
        CustomParser = r => DateTimeOffset.TryParse(r.Tokens[0].Value, CultureInfo.InvariantCulture, DateTimeStyles.AssumeUniversal, out var t)
            ? t : ReportBad(r),
    };

    private static DateTimeOffset? ReportBad(System.CommandLine.Parsing.ArgumentResult r)
    {
        r.AddError($"--after expects an ISO 8601 time such as 2026-11-26T12:00:00Z, got '{r.Tokens[0].Value}'");
        return null;
    }

    /// <summary>The shared JSON style, without escaping the quotes that fill policy error messages.</summary>
    internal static readonly System.Text.Json.JsonSerializerOptions ReadableJson = new(JsonOutput.Options)
    {
        Encoder = System.Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping,
    };

    public static Command Create()
    {
        var policy = new Command("policy", "Work with backup policy files");
        var check = new Command("check", "Validate policy files; print every error, or per policy the domains and the next 3 fire times");
        check.Arguments.Add(Files);
        check.Options.Add(After);
        check.Options.Add(GlobalOptions.Json);
        check.SetAction(parse => Check(parse));
        policy.Subcommands.Add(check);
        return policy;
    }

    private static int Check(ParseResult parse)
    {
        var paths = parse.GetValue(Files) ?? [];
        string? defaultUri = null;
        IReadOnlyList<string>? targets = null;
        if (paths.Length == 0)
        {
            var config = GlobalOptions.LoadConfig(parse);
            paths = [config.PoliciesDirectory];
            defaultUri = config.LibvirtUri;
            targets = config.Notify.Select(t => t.Name).ToList();
        }
        foreach (var path in paths.Where(p => !File.Exists(p) && !Directory.Exists(p)))
        {
            Console.Error.WriteLine($"backupd: {path}: no such file or directory");
            return ExitCodes.NotFound;
        }
        var files = paths.SelectMany(p => Directory.Exists(p) ? PolicyLoader.PolicyFilesIn(p) : [Path.GetFullPath(p)]);
        // Against the configuration's notify targets when it was read (files checked on their own have no configuration to name).
        var set = PolicyLoader.Combine(files.Select(PolicyLoader.LoadFile).Select(f => targets is null ? f : NotifyNameChecks.Check(f, targets)));
        var after = parse.GetValue(After) ?? DateTimeOffset.UtcNow;
        var report = PolicyCheckReport.Build(set, after, defaultUri ?? "qemu:///system", ListDomains);
        // The installed unit's stop timeout against these policies' worst merge-back (the daemon warns too, at load).
        var (wait, worst) = Hosting.ShutdownBudget.For(set.Policies, new Workflow.WorkflowOptions { StateDirectory = "" });
        if (Hosting.ShutdownBudget.Warning(wait, worst, Hosting.ShutdownBudget.ReadUnitStopTimeout("backupd.service"), "backupd.service") is { } warning)
            Console.Error.WriteLine($"backupd policy check: warning: {warning}");
        if (parse.GetValue(GlobalOptions.Json)) Console.WriteLine(System.Text.Json.JsonSerializer.Serialize(report, ReadableJson));
        else PrintText(report);
        return report.Valid ? ExitCodes.Ok : ExitCodes.UsageOrConfig;
    }

    /// <summary>How often changed-block tracking reads each disk in full anyway (docs/policies.md, full-every).</summary>
    private static string FullReadText(PolicyCheckReport.FullRead f) => (f.Backups, f.Days) switch
    {
        ({ } b, { } d) => $"{EveryNth(b)} backup or after {d} days, whichever comes first",
        ({ } b, null) => $"{EveryNth(b)} backup of a disk",
        (null, { } d) => $"at least every {d} days",
        _ => "never",
    };

    /// <summary>"every", "every 2nd", "every 3rd", "every 11th", "every 21st", ...</summary>
    private static string EveryNth(int n)
    {
        if (n == 1) return "every";
        var suffix = (n % 100) is 11 or 12 or 13 ? "th" : (n % 10) switch { 1 => "st", 2 => "nd", 3 => "rd", _ => "th" };
        return $"every {n}{suffix}";
    }

    private static void PrintText(PolicyCheckReport report)
    {
        if (report.Files.Count == 0) Console.WriteLine("no policy files found");
        foreach (var error in report.Errors)
            Console.WriteLine($"{error.File}:{error.Line}:{error.Column}: error: {error.Message}");
        foreach (var p in report.Policies)
        {
            Console.WriteLine();
            Console.WriteLine($"{p.Name}  ({p.File}:{p.Line})");
            var excluded = p.Domains.Exclude.Count > 0 ? $" except {string.Join(", ", p.Domains.Exclude)}" : "";
            Console.WriteLine($"  domains     {string.Join(", ", p.Domains.Include)}{excluded}");
            Console.WriteLine(p.SelectedDomains is null
                ? $"  selected    (resolved at run time from {p.Connection})"
                : $"  selected    {(p.SelectedDomains.Count == 0 ? "none right now" : string.Join(", ", p.SelectedDomains))}");
            var disksExcluded = p.Disks.Exclude.Count > 0 ? $" except {string.Join(", ", p.Disks.Exclude)}" : "";
            Console.WriteLine($"  disks       {string.Join(", ", p.Disks.Include)}{disksExcluded}");
            Console.WriteLine($"  repository  {p.Repository}");
            foreach (var entry in p.Schedule)
                Console.WriteLine($"  schedule    {entry.Written}{(entry.Written == entry.Cron ? "" : $"  ({entry.Cron})")}  [{p.TimeZone}]");
            Console.WriteLine(p.NextFireTimes.Count == 0
                ? "  next        never (the schedule has no future fire time)"
                : $"  next        {string.Join(Environment.NewLine + "              ", p.NextFireTimes.Select(t => t.ToString("yyyy-MM-dd HH:mm:ss zzz (ddd)", CultureInfo.InvariantCulture)))}");
            Console.WriteLine($"  retention   {p.Retention}");
            Console.WriteLine($"  quiesce     {p.Quiesce.ToString().ToLowerInvariant()}; max-parallel {p.MaxParallel}; timeouts copy {p.CopyTimeout}, commit {p.CommitTimeout}");
            Console.WriteLine($"  full read   {FullReadText(p.FullEvery)}");
            foreach (var copy in p.Copies)
            {
                var rate = copy.Bandwidth is { } b ? $", {b / 1048576.0:0.##} MiB/s" : "";
                Console.WriteLine($"  copy to     {copy.Target}  (retention {copy.Retention}; {copy.Retries} retries{rate})");
            }
        }
        Console.WriteLine();
        Console.WriteLine(report.Valid
            ? $"{report.Policies.Count} policies in {report.Files.Count} files: OK"
            : $"{report.Errors.Count} errors in {report.Files.Count(f => !f.Valid)} of {report.Files.Count} files");
    }
}

/// <summary>The result of `policy check`, shaped for JSON output (and printed as text).</summary>
public sealed record PolicyCheckReport(
    bool Valid,
    IReadOnlyList<PolicyCheckReport.FileStatus> Files,
    IReadOnlyList<PolicyCheckReport.ErrorEntry> Errors,
    IReadOnlyList<PolicyCheckReport.PolicySummary> Policies)
{
    public sealed record FileStatus(string Path, bool Valid, int Policies);
    public sealed record ErrorEntry(string File, int Line, int Column, string Message);
    public sealed record Selection(IReadOnlyList<string> Include, IReadOnlyList<string> Exclude);
    public sealed record Schedule(string Written, string Cron);
    public sealed record FullRead(int? Backups, int? Days);
    public sealed record Copy(string Target, string Retention, long? Bandwidth, int Retries);

    public sealed record PolicySummary(
        string Name, string File, int Line, string Connection, Selection Domains, IReadOnlyList<string>? SelectedDomains,
        Selection Disks, string Repository, IReadOnlyList<Schedule> Schedule, string TimeZone,
        IReadOnlyList<DateTimeOffset> NextFireTimes, string Retention, QuiesceMode Quiesce, int BlockSize,
        int MaxParallel, string CopyTimeout, string CommitTimeout, long? CopyBandwidth, long? CommitBandwidth,
        bool VerifyAfterBackup, IReadOnlyList<Schedule>? VerifySchedule, FullRead FullEvery, IReadOnlyList<Copy> Copies);

    public static PolicyCheckReport Build(PolicySetResult set, DateTimeOffset after, string defaultUri, Func<string, IReadOnlyList<string>?> listDomains)
    {
        var domainCache = new Dictionary<string, IReadOnlyList<string>?>(StringComparer.Ordinal);
        IReadOnlyList<string>? Domains(string uri)
        {
            if (!domainCache.TryGetValue(uri, out var names)) domainCache[uri] = names = listDomains(uri);
            return names;
        }
        static Selection Sel(Backupd.Policies.Selection.NameSelection s) => new(s.Include.Select(p => p.Text).ToList(), s.Exclude.Select(p => p.Text).ToList());
        static List<Schedule> Entries(ScheduleDefinition s) => s.Entries.Select(e => new Schedule(e.Written, e.CronText)).ToList();
        static string Span(TimeSpan t) => t.TotalSeconds % 3600 == 0 ? $"{(int)t.TotalHours}h" : t.TotalSeconds % 60 == 0 ? $"{(int)t.TotalMinutes}m" : $"{(int)t.TotalSeconds}s";

        var policies = set.Policies.Select(p =>
        {
            var uri = p.Connection ?? defaultUri;
            var selected = Domains(uri) is { } all ? p.Domains.SelectFrom(all) : null;
            return new PolicySummary(
                p.Name, p.Source.File, p.Source.Line, uri, Sel(p.Domains), selected, Sel(p.Disks), p.Repository,
                Entries(p.Schedule), p.Schedule.TimeZoneId, p.Schedule.NextFireTimes(after, 3), p.Retention.ToString(), p.Quiesce,
                p.BlockSize, p.MaxParallel, Span(p.CopyTimeout), Span(p.CommitTimeout), p.CopyBandwidth, p.CommitBandwidth,
                p.Verify.AfterBackup, p.Verify.Schedule is null ? null : Entries(p.Verify.Schedule),
                new FullRead(p.FullEvery.Backups, p.FullEvery.Days),
                p.Copies.Select(c => new Copy(c.Target, c.Retention.ToString(), c.Bandwidth, c.Retries)).ToList());
        }).ToList();
        return new PolicyCheckReport(
            set.IsValid,
            set.Files.Select(f => new FileStatus(f.Path, f.IsValid, f.Policies.Count)).ToList(),
            set.Errors.Select(e => new ErrorEntry(e.File, e.Line, e.Column, e.Message)).ToList(),
            policies);
    }
}
