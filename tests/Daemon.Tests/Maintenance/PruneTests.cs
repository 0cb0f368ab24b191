using Backupd.Policies.Model;
using Backupd.Daemon.Maintenance;
using Backupd.Daemon.Scheduling;
using Backupd.Daemon.Tests.Scheduling;
using Backupd.Storage.Repository;

namespace Backupd.Daemon.Tests.Maintenance;

/// <summary>Retention applied to a real versioned repository (no catalog here; the integration tests add it).</summary>
public sealed class PruneTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("bkd-prune-").FullName;
    private string Repo => Path.Combine(_dir, "repo");

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    /// <summary>Commits <paramref name="count"/> restore points of a small changing "disk" for one domain; returns their ids, oldest first.</summary>
    internal static async Task<List<string>> CommitPointsAsync(string repository, string group, string domain, int count)
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
    public async Task Pruning_removes_what_the_rules_do_not_keep_for_selected_domains_only()
    {
        var web = await CommitPointsAsync(Repo, "11111111-1111-1111-1111-111111111111", "web-1", 5);
        var db = await CommitPointsAsync(Repo, "22222222-2222-2222-2222-222222222222", "db-1", 3);
        var policy = TestPolicies.One($"name: web\ndomains: ['web-*']\nschedule: daily\nrepository: {Repo}\nretention: {{keep-last: 2}}\n");
        var store = new RepositoryPointStore(null);

        var dry = await RetentionPruner.PruneAsync(policy, store, DateTimeOffset.UtcNow.AddMinutes(1), dryRun: true, default);
        Assert.Equal(web.Take(3), dry.Where(d => !d.Keep).Select(d => d.Point));
        Assert.Equal(web, Points(Repo, "11111111-1111-1111-1111-111111111111"));

        var done = await RetentionPruner.PruneAsync(policy, store, DateTimeOffset.UtcNow.AddMinutes(1), dryRun: false, default);
        Assert.Equal(dry, done);
        Assert.Equal(web.Skip(3), Points(Repo, "11111111-1111-1111-1111-111111111111"));
        Assert.Equal(db, Points(Repo, "22222222-2222-2222-2222-222222222222")); // not selected by the policy
        Assert.All(done.Where(d => d.Keep), d => Assert.StartsWith("keep-last: newest", d.Reason, StringComparison.Ordinal));
        using var repo = BackupRepository.Open(Repo);
        Assert.True((await repo.VerifyAsync(null, null, null, default)).Ok);
    }

    [Fact]
    public async Task A_domain_two_policies_back_up_into_one_repository_is_not_pruned_by_either()
    {
        var web = await CommitPointsAsync(Repo, "11111111-1111-1111-1111-111111111111", "web-1", 4);
        var db = await CommitPointsAsync(Repo, "22222222-2222-2222-2222-222222222222", "db-1", 3);
        // Different globs, so the loader accepts both; they meet on web-1 only.
        var webPolicy = TestPolicies.One($"name: web\ndomains: ['web-*']\nschedule: daily\nrepository: {Repo}/\nretention: {{keep-last: 1}}\n");
        var onesPolicy = TestPolicies.One($"name: ones\ndomains: ['*-1']\nschedule: daily\nrepository: {Repo}\nretention: {{keep-last: 2}}\n");
        var elsewhere = TestPolicies.One($"name: other\ndomains: ['web-*']\nschedule: daily\nrepository: {Repo}-other\nretention: {{keep-last: 1}}\n");
        PolicyDefinition[] loaded = [webPolicy, onesPolicy, elsewhere];
        var store = new RepositoryPointStore(null);
        var now = DateTimeOffset.UtcNow.AddMinutes(1);

        var byWeb = await RetentionPruner.PruneAsync(webPolicy, store, now, dryRun: false, default, peers: loaded);
        var byOnes = await RetentionPruner.PruneAsync(onesPolicy, store, now, dryRun: false, default, peers: loaded);

        Assert.All(byWeb, d => Assert.True(d.Keep));
        Assert.Contains("also selected by policy ones", byWeb[0].Reason, StringComparison.Ordinal);
        Assert.Equal(web, Points(Repo, "11111111-1111-1111-1111-111111111111")); // neither policy removed a web-1 point
        Assert.All(byOnes.Where(d => d.Domain == "web-1"), d => Assert.Contains("also selected by policy web", d.Reason, StringComparison.Ordinal));
        Assert.Equal(db.Skip(1), Points(Repo, "22222222-2222-2222-2222-222222222222")); // db-1 is only "ones"'s: pruned to 2
        // Without the peers (one policy alone) the same rules do prune web-1.
        await RetentionPruner.PruneAsync(webPolicy, store, now, dryRun: false, default);
        Assert.Equal(web.Skip(3), Points(Repo, "11111111-1111-1111-1111-111111111111"));
    }

    [Fact]
    public async Task A_missing_repository_is_not_created()
    {
        var policy = TestPolicies.One($"name: web\ndomains: ['*']\nschedule: daily\nrepository: {Repo}\nretention: {{keep-last: 1}}\n");
        Assert.Empty(await RetentionPruner.PruneAsync(policy, new RepositoryPointStore(null), DateTimeOffset.UtcNow, dryRun: false, default));
        Assert.False(Directory.Exists(Repo));
    }

    [Fact]
    public void Policy_disk_patterns_become_eligible_targets()
    {
        const string xml = """
            <domain><devices>
              <disk type='file' device='disk'><source file='/i/a.qcow2'/><target dev='vda'/></disk>
              <disk type='file' device='disk'><source file='/i/b.qcow2'/><target dev='vdb'/></disk>
              <disk type='file' device='cdrom'><source file='/i/c.iso'/><target dev='sda'/><readonly/></disk>
            </devices></domain>
            """;
        Assert.Empty(Backupd.Daemon.Runs.BackupService.DisksFor(TestPolicies.One("name: p\ndomains: [x]\nschedule: daily\nrepository: /r\n").Disks, xml));
        Assert.Equal(["vdb"], Backupd.Daemon.Runs.BackupService.DisksFor(TestPolicies.One("name: p\ndomains: [x]\nschedule: daily\nrepository: /r\ndisks: {include: ['*'], exclude: [vda]}\n").Disks, xml));
        Assert.Throws<Backupd.Daemon.Workflow.BackupRefusedException>(() => Backupd.Daemon.Runs.BackupService.DisksFor(TestPolicies.One("name: p\ndomains: [x]\nschedule: daily\nrepository: /r\ndisks: [sd*]\n").Disks, xml));
    }
}
