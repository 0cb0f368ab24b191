using Backupd.Integration.Fixtures;
using Backupd.Storage.Repository;

namespace Backupd.Integration;

/// <summary>`backupd prune` as a process over a real versioned repository and catalog.</summary>
[Trait("Category", "Integration")]
public sealed class PruneCommandTests(PostgresDatabase database) : IClassFixture<PostgresDatabase>
{
    private static async Task<List<string>> CommitPointsAsync(string repository, string group, string domain, int count)
    {
        var ids = new List<string>();
        var source = Path.Combine(Path.GetDirectoryName(repository)!, $"{group}.raw");
        using var repo = BackupRepository.Open(repository);
        for (var i = 0; i < count; i++)
        {
            await File.WriteAllBytesAsync(source, Enumerable.Repeat((byte)(i + 1), 128 << 10).ToArray());
            using var session = repo.BeginBackup(group, domain);
            await session.AddFileAsync("vda.0", source, new SourceFileInfo(source, "raw", null, 128 << 10), null, CancellationToken.None);
            ids.Add(session.Commit().PointId);
        }
        return ids;
    }

    private static List<string> Points(string repository, string group)
    {
        using var repo = BackupRepository.Open(repository);
        return repo.ListPoints(group).OrderBy(p => p.Sequence).Select(p => p.PointId).ToList();
    }

    [Fact]
    public async Task Dry_run_changes_nothing_then_prune_applies_each_policy()
    {
        using var config = new TempConfig(database.ConnectionString);
        var repository = Path.Combine(config.Directory, "repo");
        const string webGroup = "11111111-1111-1111-1111-111111111111", dbGroup = "22222222-2222-2222-2222-222222222222";
        var web = await CommitPointsAsync(repository, webGroup, "web-1", 5);
        var db = await CommitPointsAsync(repository, dbGroup, "db-1", 3);
        await File.WriteAllTextAsync(Path.Combine(config.PoliciesDirectory, "p.yaml"),
            $"policies:\n  - {{name: web, domains: ['web-*'], schedule: daily, repository: {repository}, retention: {{keep-last: 3}}}}\n  - {{name: db, domains: [db-1], schedule: daily, repository: {repository}, retention: {{keep-last: 1}}}}\n");

        var dry = await BackupdProcess.RunAsync("--config", config.Path, "prune", "--policy", "db", "--dry-run");
        Assert.True(dry.ExitCode == 0, dry.Stderr);
        Assert.Contains("2 of 3 restore points would be removed", dry.Stdout, StringComparison.Ordinal);
        Assert.Contains($"would remove  db  db-1  {db[0]}", dry.Stdout, StringComparison.Ordinal);
        Assert.Equal(db, Points(repository, dbGroup));

        var real = await BackupdProcess.RunAsync("--config", config.Path, "prune");
        Assert.True(real.ExitCode == 0, real.Stderr);
        Assert.Contains("4 of 8 restore points were removed", real.Stdout, StringComparison.Ordinal);
        Assert.Equal(db.Skip(2), Points(repository, dbGroup));
        Assert.Equal(web.Skip(2), Points(repository, webGroup));

        var missing = await BackupdProcess.RunAsync("--config", config.Path, "prune", "--policy", "nope");
        Assert.Equal(3, missing.ExitCode);
        Assert.Contains("no valid policy named 'nope'", missing.Stderr, StringComparison.Ordinal);
    }
}
