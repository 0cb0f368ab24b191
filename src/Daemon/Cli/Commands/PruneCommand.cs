using System.CommandLine;
using System.Globalization;
using Backupd.Daemon.Maintenance;
using Backupd.Policies.Loading;
using Backupd.Storage.Catalog;

namespace Backupd.Daemon.Cli.Commands;

/// <summary>`backupd prune [--policy NAME] [--dry-run]`: applies the policies' retention by hand, as the daemon does after each backup.</summary>
public static class PruneCommand
{
    private static readonly Option<string?> Policy = new("--policy") { Description = "Only this policy (default: every policy)" };
    private static readonly Option<bool> DryRun = new("--dry-run") { Description = "Show what would be removed; change nothing" };

    public static Command Create()
    {
        var command = new Command("prune", "Apply the retention rules of the policies to their repositories");
        command.Options.Add(Policy);
        command.Options.Add(DryRun);
        command.Options.Add(GlobalOptions.Json);
        command.SetAction((parse, ct) => RunAsync(parse, ct));
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
        var store = new RepositoryPointStore(catalog);
        var now = DateTimeOffset.UtcNow;
        var decisions = new List<PruneDecision>();
        foreach (var policy in policies) decisions.AddRange(await RetentionPruner.PruneAsync(policy, store, now, dryRun, ct, peers: set.Policies));
        if (parse.GetValue(GlobalOptions.Json))
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
}
