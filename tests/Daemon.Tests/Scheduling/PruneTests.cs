using System.Diagnostics;
using Backupd.Daemon.Scheduling;

namespace Backupd.Daemon.Tests.Scheduling;

/// <summary>Retention applied to a real directory repository, by the pruner and by `backupd prune`.</summary>
public sealed class PruneTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("bkd-prune-").FullName;
    private string Repo => Path.Combine(_dir, "repo");

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    private void Point(string group, string domain, DateTimeOffset time)
    {
        var dir = Path.Combine(Repo, group, time.UtcDateTime.ToString("yyyyMMdd'T'HHmmssfff'Z'", System.Globalization.CultureInfo.InvariantCulture));
        Directory.CreateDirectory(dir);
        File.WriteAllText(Path.Combine(dir, "manifest.json"), "[]");
        File.WriteAllText(Path.Combine(dir, "domain.xml"), $"<domain type='qemu'><name>{domain}</name></domain>");
    }

    private IEnumerable<string> Points(string group) => Directory.EnumerateDirectories(Path.Combine(Repo, group)).Select(Path.GetFileName).Order()!;

    private void Fill()
    {
        var day = new DateTimeOffset(2026, 11, 20, 2, 0, 0, TimeSpan.Zero);
        for (var i = 0; i < 5; i++) Point("uuid-web", "web-1", day.AddDays(i));
        for (var i = 0; i < 3; i++) Point("uuid-db", "db-1", day.AddDays(i));
    }

    [Fact]
    public void Pruning_removes_what_the_rules_do_not_keep_for_selected_domains_only()
    {
        Fill();
        var policy = TestPolicies.One($"name: web\ndomains: ['web-*']\nschedule: daily\nrepository: {Repo}\nretention: {{keep-last: 2}}\n");
        var now = new DateTimeOffset(2026, 11, 26, 12, 0, 0, TimeSpan.Zero);

        var dry = RetentionPruner.Prune(policy, new DirectoryPointStore(), now, dryRun: true);
        Assert.Equal(3, dry.Count(d => !d.Keep));
        Assert.Equal(5, Points("uuid-web").Count());

        var done = RetentionPruner.Prune(policy, new DirectoryPointStore(), now, dryRun: false);
        Assert.Equal(dry, done);
        Assert.Equal(["20261123T020000000Z", "20261124T020000000Z"], Points("uuid-web"));
        Assert.Equal(3, Points("uuid-db").Count()); // not selected by the policy
        Assert.All(done.Where(d => d.Keep), d => Assert.StartsWith("keep-last", d.Reason, StringComparison.Ordinal));
    }

    [Fact]
    public void Prune_waits_for_no_writer_and_refuses_to_delete_under_one()
    {
        Fill();
        var policy = TestPolicies.One($"name: web\ndomains: ['web-*']\nschedule: daily\nrepository: {Repo}\nretention: {{keep-last: 1}}\n");
        using (new FileStream(Path.Combine(Repo, "uuid-web", ".lock"), FileMode.OpenOrCreate, FileAccess.ReadWrite, FileShare.None))
            Assert.Throws<IOException>(() => RetentionPruner.Prune(policy, new DirectoryPointStore(), DateTimeOffset.UtcNow, dryRun: false));
        Assert.Equal(5, Points("uuid-web").Count());
    }

    [Fact]
    public async Task Prune_command_dry_run_then_for_real()
    {
        Fill();
        Directory.CreateDirectory(Path.Combine(_dir, "policies.d"));
        File.WriteAllText(Path.Combine(_dir, "policies.d", "p.yaml"),
            $"policies:\n  - {{name: web, domains: ['web-*'], schedule: daily, repository: {Repo}, retention: {{keep-last: 3}}}}\n  - {{name: db, domains: [db-1], schedule: daily, repository: {Repo}, retention: {{keep-last: 1}}}}\n");
        var config = Path.Combine(_dir, "backupd.yaml");
        File.WriteAllText(config, "catalog-connection: Host=127.0.0.1\nstate-directory: state\npolicies-directory: policies.d\n");

        var (code, stdout, stderr) = await Backupd("--config", config, "prune", "--policy", "db", "--dry-run");
        Assert.True(code == 0, stderr);
        Assert.Contains("2 of 3 restore points would be removed", stdout, StringComparison.Ordinal);
        Assert.Equal(3, Points("uuid-db").Count());

        (code, stdout, stderr) = await Backupd("--config", config, "prune");
        Assert.True(code == 0, stderr);
        Assert.Contains("4 of 8 restore points were removed", stdout, StringComparison.Ordinal);
        Assert.Equal(["20261122T020000000Z"], Points("uuid-db"));
        Assert.Equal(3, Points("uuid-web").Count());

        (code, _, stderr) = await Backupd("--config", config, "prune", "--policy", "nope");
        Assert.Equal(3, code);
        Assert.Contains("no valid policy named 'nope'", stderr, StringComparison.Ordinal);
    }

    private static async Task<(int Code, string Stdout, string Stderr)> Backupd(params string[] args)
    {
        var info = new ProcessStartInfo("dotnet") { RedirectStandardOutput = true, RedirectStandardError = true };
        info.ArgumentList.Add(Path.Combine(AppContext.BaseDirectory, "backupd.dll"));
        foreach (var a in args) info.ArgumentList.Add(a);
        info.Environment.Remove("BACKUPD_CONFIG");
        using var p = Process.Start(info)!;
        var stdout = p.StandardOutput.ReadToEndAsync();
        var stderr = p.StandardError.ReadToEndAsync();
        await p.WaitForExitAsync();
        return (p.ExitCode, await stdout, await stderr);
    }
}
