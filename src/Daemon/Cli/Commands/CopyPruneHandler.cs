using System.CommandLine;
using System.Globalization;
using Backupd.Daemon.Copies;
using Backupd.Daemon.Offsite;
using Backupd.Policies.Loading;
using Backupd.Policies.Retention;
using Backupd.Storage.Catalog;

namespace Backupd.Daemon.Cli.Commands;

/// <summary>
/// `backupd prune --target TARGET [--keep-last N ...] [--policy NAME] [--dry-run] [--key FILE]`: retention on a copy
/// repository, then collection of the chunks nothing names any more. Run by the side allowed to delete: on the
/// repository's host with its path (also as `--repository PATH`), or over ssh through a key whose forced
/// `backupd serve` has no --append-only. The rules: the --keep-* options, else the retention the policy's `copies:`
/// entry for this target gives.
/// </summary>
internal static class CopyPruneHandler
{
    public static readonly Option<string?> Target = new("--target") { Description = "Prune this copy repository (a directory or ssh://[user@]host/path) instead of the policies' local repositories" };
    public static readonly Option<string?> Repository = new("--repository") { Description = "Prune the copy repository in this directory (on its host: the same as --target PATH)" };
    public static readonly Option<string?> Key = OffsiteCli.KeyOption();
    private static readonly (string Name, Option<int?> Option)[] Keeps = PolicyReaderKeys.Select(k => (k, new Option<int?>($"--{k}") { Description = $"With --target: {k} N (default: the retention of the policy's copy to this target)" })).ToArray();

    private const int MaxCount = 100_000; // as in a policy's retention

    private static IEnumerable<string> PolicyReaderKeys => ["keep-last", "keep-hourly", "keep-daily", "keep-weekly", "keep-monthly", "keep-yearly"];

    public static void AddOptions(Command command)
    {
        command.Options.Add(Target);
        command.Options.Add(Repository);
        command.Options.Add(Key);
        command.Options.Add(CatalogBackupHandler.NoCatalog);
        foreach (var (_, option) in Keeps)
        {
            command.Options.Add(option);
        }
    }

    public static bool Applies(ParseResult parse) => parse.GetValue(Target) is not null || parse.GetValue(Repository) is not null || Keeps.Any(k => parse.GetValue(k.Option) is not null);

    public static Task<int> RunAsync(ParseResult parse, Option<string?> policyOption, Option<bool> dryRunOption, CancellationToken ct) => RepositoryCli.GuardAsync("prune", async () =>
    {
        var json = parse.GetValue(GlobalOptions.Json);
        var dryRun = parse.GetValue(dryRunOption);
        var target = (parse.GetValue(Target), parse.GetValue(Repository)) switch
        {
            ({ } t, null) => t,
            (null, { } r) => Path.GetFullPath(r),
            (null, null) => throw new CliFailureException(FailureKind.Usage, "--keep-* options are for a copy repository: give --target TARGET (or --repository PATH on its host)"),
            _ => throw new CliFailureException(FailureKind.Usage, "give --target or --repository, not both"),
        };
        var targetKey = CopyRunner.TargetKey(target);
        var retention = Retention(parse, policyOption.Name, parse.GetValue(policyOption), targetKey);
        var (useCatalog, note) = CatalogBackupHandler.Choose(parse, "prune");
        if (note is not null && !json && !dryRun) await Console.Error.WriteLineAsync(note);
        await using var catalog = useCatalog && !dryRun
            ? await CopyCommand.OpenCatalogAsync(parse, ct, "nothing was pruned. Fix 'catalog-connection' or PostgreSQL, or run with --no-catalog (the catalog's copy rows are then left as they are)")
            : null;
        using var copy = OffsiteCli.Open(target, parse.GetValue(Key), create: false);
        var (decisions, report) = await Task.Run(() => CopyPruner.Prune(copy, retention, DateTimeOffset.UtcNow, dryRun, ct), ct);
        var rowsRemoved = 0;
        if (catalog is not null)
        {
            // The points removed now, and any another prune (on the repository's host) removed before.
            var held = decisions.Where(d => d.Keep).Select(d => d.Point).ToHashSet(StringComparer.Ordinal);
            foreach (var row in await catalog.ListTargetCopiesAsync(targetKey, ct))
            {
                if (!held.Contains(row.PointId) && await catalog.DeletePointCopyAsync(row.PointId, targetKey, ct)) rowsRemoved++;
            }
        }
        if (json)
        {
            JsonOutput.Write(new
            {
                dryRun, target = copy.Location, retention = retention.Source, rules = retention.Rules.ToString(), decisions,
                indexesRemoved = report.IndexesRemoved, chunksRemoved = report.ChunksRemoved, bytesFreed = report.BytesFreed,
                chunksKept = report.ChunksKept, leftoversRemoved = report.LeftoversRemoved, catalogRowsRemoved = rowsRemoved,
            });
            return ExitCodes.Ok;
        }
        foreach (var d in decisions)
            Console.WriteLine($"{(d.Keep ? "keep  " : dryRun ? "would remove" : "remove")}  {d.Domain}  {d.Point}  {d.Time.ToString("yyyy-MM-dd HH:mm:ss", CultureInfo.InvariantCulture)}  {d.Reason}");
        Console.WriteLine(dryRun
            ? $"{report.IndexesRemoved.Count} of {decisions.Count} points would be removed from {copy.Location} ({retention.Source}: {retention.Rules}); " +
              $"{report.ChunksRemoved} chunks would then be unreferenced and collected, {report.ChunksKept} kept"
            : $"{report.IndexesRemoved.Count} of {decisions.Count} points removed from {copy.Location} ({retention.Source}: {retention.Rules}); " +
              $"{report.ChunksRemoved} unreferenced chunks collected ({RepositoryCli.Size(report.BytesFreed)} freed), {report.ChunksKept} kept" +
              (report.LeftoversRemoved > 0 ? $"; {report.LeftoversRemoved} leftovers of interrupted uploads removed" : "") +
              (rowsRemoved > 0 ? $"; {rowsRemoved} catalog copy rows removed" : ""));
        return ExitCodes.Ok;
    });

    /// <summary>The --keep-* options when any is given, else the retention of the one policy copy to <paramref name="targetKey"/>.</summary>
    private static CopyRetention Retention(ParseResult parse, string policyOptionName, string? policyName, string targetKey)
    {
        var given = Keeps.Where(k => parse.GetValue(k.Option) is not null).ToList();
        foreach (var (name, option) in given)
        {
            if (parse.GetValue(option) is < 0 or > MaxCount)
                throw new CliFailureException(FailureKind.Usage, $"--{name} {parse.GetValue(option)}: expected a count from 0 to {MaxCount}");
        }
        if (given.Count > 0)
        {
            int Count(string name) => Keeps.First(k => k.Name == name).Option is var o && parse.GetValue(o) is { } n ? n : 0;
            var rules = new RetentionRules(Count("keep-last"), Count("keep-hourly"), Count("keep-daily"), Count("keep-weekly"), Count("keep-monthly"), Count("keep-yearly"));
            if (rules.KeepsEverything)
                throw new CliFailureException(FailureKind.Usage, "every --keep-* count is 0: nothing would be kept by a rule; give a positive count (or none, for the policy's retention)");
            return new CopyRetention(rules, null, TimeZoneInfo.Utc, "--keep options");
        }
        var config = GlobalOptions.LoadConfig(parse);
        var set = PolicyLoader.LoadDirectory(config.PoliciesDirectory);
        var copies = set.Policies.Where(p => policyName is null || p.Name == policyName)
            .SelectMany(p => p.Copies.Where(c => CopyRunner.TargetKey(c.Target) == targetKey).Select(c => (Policy: p, Copy: c))).ToList();
        return copies.Count switch
        {
            0 => throw new CliFailureException(FailureKind.Usage, $"no {(policyName is null ? "policy" : $"policy '{policyName}'")} in {config.PoliciesDirectory} copies to {targetKey}: give the rules (--keep-last N, --keep-daily N, ...)"),
            1 => new CopyRetention(copies[0].Copy.Retention, copies[0].Policy.Domains.Matches, copies[0].Policy.Schedule.TimeZone, $"policy {copies[0].Policy.Name}"),
            _ => throw new CliFailureException(FailureKind.Usage, $"policies {string.Join(", ", copies.Select(c => c.Policy.Name))} all copy to {targetKey}: name one with {policyOptionName}, or give --keep-* rules"),
        };
    }
}
