using System.CommandLine;
using System.Globalization;
using Backupd.Daemon.Maintenance;
using Backupd.Policies.Loading;
using Backupd.Storage.Catalog;

namespace Backupd.Daemon.Cli.Commands;

/// <summary>
/// `backupd prune [--policy NAME] [--dry-run]`: applies the policies' retention by hand, as the daemon does after each
/// backup; with --target (or --repository of a copy repository) it prunes a copy instead (<see cref="CopyPruneHandler"/>).
/// </summary>
public static class PruneCommand
{
    private static readonly Option<string?> Policy = new("--policy") { Description = "Only this policy (default: every policy)" };
    private static readonly Option<bool> DryRun = new("--dry-run") { Description = "Show what would be removed; change nothing" };

    public static Command Create()
    {
        var command = new Command("prune", "Apply the retention rules of the policies to their repositories, or to a copy repository (--target)");
        command.Options.Add(Policy);
        command.Options.Add(DryRun);
        command.Options.Add(GlobalOptions.Json);
        CopyPruneHandler.AddOptions(command);
        command.SetAction((parse, ct) => CopyPruneHandler.Applies(parse) ? CopyPruneHandler.RunAsync(parse, Policy, DryRun, ct) : RunAsync(parse, ct));
        return command;
    }

    private static async Task<int> RunAsync(ParseResult parse, CancellationToken ct)
    {
        var config = GlobalOptions.LoadConfig(parse);
        var set = PolicyLoader.LoadDirectory(config.PoliciesDirectory);
        foreach (var error in set.Errors) Console.Error.WriteLine($"backupd prune: {error}");
        var name = parse.GetValue(Policy);
        var policies = set.Policies.Where(p => name is null || p.Name == name).ToList();
        if (name is not null && policies.Count == 0)
        {
            Console.Error.WriteLine($"backupd prune: no valid policy named '{name}' in {config.PoliciesDirectory}");
            return set.Files.Any(f => !f.IsValid) ? ExitCodes.UsageOrConfig : ExitCodes.NotFound;
        }
        var dryRun = parse.GetValue(DryRun);
        // The catalog is kept in step (rows removed, a retention event per point); like every command, migrate first.
        await CatalogMigrator.MigrateAsync(config.CatalogConnectionString, ct);
        await using var catalog = new CatalogStore(config.CatalogConnectionString);
        var now = DateTimeOffset.UtcNow;
        var json = parse.GetValue(GlobalOptions.Json);
        // On a terminal a status line names the point being removed (merging undo records can take a while per point).
        var decisions = await TerminalProgress.WithStatusAsync(json, "prune: planning", async status =>
        {
            var store = new ReportingStore(new RepositoryPointStore(catalog), status);
            var all = new List<PruneDecision>();
            foreach (var policy in policies)
            {
                status($"prune {policy.Name}: {store.Removed} removed so far");
                all.AddRange(await RetentionPruner.PruneAsync(policy, store, now, dryRun, ct, peers: set.Policies));
            }
            return all;
        });
        if (json)
        {
            Console.WriteLine(System.Text.Json.JsonSerializer.Serialize(new { dryRun, decisions }, PolicyCommand.ReadableJson));
        }
        else
        {
            foreach (var d in decisions)
                Console.WriteLine($"{(d.Keep ? "keep  " : dryRun ? "would remove" : "remove")}  {d.Policy}  {d.Domain}  {d.Point}  {d.Time.ToString("yyyy-MM-dd HH:mm:ss", CultureInfo.InvariantCulture)}  {d.Reason}");
            Console.WriteLine($"{decisions.Count(d => !d.Keep)} of {decisions.Count} restore points {(dryRun ? "would be" : "were")} removed");
        }
        return set.IsValid ? ExitCodes.Ok : ExitCodes.UsageOrConfig;
    }

    /// <summary>Tells the status line which point is being removed and how many are done; the deletion itself is the inner store's.</summary>
    internal sealed class ReportingStore(IRestorePointStore inner, Action<string> status) : IRestorePointStore
    {
        public int Removed { get; private set; }

        public IReadOnlyList<(string Group, string DomainName, IReadOnlyList<StoredPoint> Points)> ListGroups(string repository) => inner.ListGroups(repository);

        public async Task DeleteAsync(string repository, StoredPoint point, string reason, CancellationToken ct)
        {
            status($"prune: removing {point.Id} of {point.DomainName} ({Removed} removed so far)");
            await inner.DeleteAsync(repository, point, reason, ct);
            Removed++;
        }
    }
}
