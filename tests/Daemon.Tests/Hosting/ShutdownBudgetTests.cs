using Backupd.Daemon.Hosting;
using Backupd.Daemon.Workflow;
using Backupd.Policies.Loading;
using Backupd.Policies.Model;

namespace Backupd.Daemon.Tests.Hosting;

/// <summary>The stop rule: the host waits for the worst merge-back of the loaded policies; a shorter unit stop timeout is warned about.</summary>
public sealed class ShutdownBudgetTests
{
    private static readonly WorkflowOptions Workflow = new() { StateDirectory = "/var/lib/backupd" };

    private static PolicyDefinition Policy(string name, string commit) =>
        PolicyLoader.ParseText($"name: {name}\ndomains: [d]\nschedule: hourly\nrepository: /r\ntimeouts: {{commit: {commit}}}\n", $"/etc/backupd/policies.d/{name}.yaml").Policies.Single();

    [Fact]
    public void A_merge_back_is_every_attempt_with_its_pivot_plus_the_retry_delays()
    {
        // 3 attempts x (15 min commit + 1 min pivot) + 2 s + 4 s between them.
        Assert.Equal(TimeSpan.FromMinutes(48) + TimeSpan.FromSeconds(6), ShutdownBudget.MergeBack(TimeSpan.FromMinutes(15), Workflow));
        var twice = Workflow with { CommitAttempts = 2, PivotTimeout = TimeSpan.FromSeconds(30), CommitRetryDelay = TimeSpan.FromSeconds(10) };
        Assert.Equal(TimeSpan.FromMinutes(11) + TimeSpan.FromSeconds(10), ShutdownBudget.MergeBack(TimeSpan.FromMinutes(5), twice));
    }

    [Fact]
    public void The_wait_follows_the_policy_with_the_longest_commit_time_box()
    {
        var (wait, worst) = ShutdownBudget.For([Policy("web", "5m"), Policy("db", "15m"), Policy("mail", "10m")], Workflow);
        Assert.Equal("db", worst!.Name);
        Assert.Equal(ShutdownBudget.MergeBack(TimeSpan.FromMinutes(15), Workflow) + ShutdownBudget.Margin, wait);

        var (none, nobody) = ShutdownBudget.For([], Workflow);
        Assert.Null(nobody);
        Assert.Equal(ShutdownBudget.MergeBack(PolicyDefaults.CommitTimeout, Workflow) + ShutdownBudget.Margin, none);
    }

    [Fact]
    public void A_unit_stop_timeout_shorter_than_the_wait_is_warned_about_with_the_policy_and_the_fix()
    {
        var db = Policy("db", "15m");
        var (wait, worst) = ShutdownBudget.For([db], Workflow);

        var warning = ShutdownBudget.Warning(wait, worst, TimeSpan.FromMinutes(15), "backupd.service");

        Assert.NotNull(warning);
        Assert.Contains("TimeoutStopSec=15min", warning, StringComparison.Ordinal);
        Assert.Contains("policy 'db' (/etc/backupd/policies.d/db.yaml): commit 15min", warning, StringComparison.Ordinal);
        Assert.Contains("Set TimeoutStopSec=50min or more", warning, StringComparison.Ordinal);
        Assert.Null(ShutdownBudget.Warning(wait, worst, wait, "backupd.service"));
        Assert.Null(ShutdownBudget.Warning(wait, worst, TimeSpan.MaxValue, "backupd.service"));
        Assert.Null(ShutdownBudget.Warning(wait, worst, null, "backupd.service"));
    }

    [Theory]
    [InlineData("15min", 900)]
    [InlineData("1h", 3600)]
    [InlineData("1h 30min", 5400)]
    [InlineData("1min 30s", 90)]
    [InlineData("90", 90)]
    [InlineData("500ms", 0.5)]
    public void Systemd_time_spans_parse(string text, double seconds) =>
        Assert.Equal(TimeSpan.FromSeconds(seconds), ShutdownBudget.ParseTimespan(text));

    [Theory]
    [InlineData("")]
    [InlineData("soon")]
    [InlineData("15 fortnights")]
    public void Other_text_is_not_a_time_span(string text) => Assert.Null(ShutdownBudget.ParseTimespan(text));

    [Fact]
    public void Infinity_never_warns() => Assert.Equal(TimeSpan.MaxValue, ShutdownBudget.ParseTimespan("infinity"));

    [Fact]
    public void The_shipped_unit_waits_long_enough_for_the_shipped_policies()
    {
        var root = ConfigLoaderTests.RepoRoot();
        var line = File.ReadAllLines(Path.Combine(root, "systemd", "backupd.service")).Single(l => l.StartsWith("TimeoutStopSec=", StringComparison.Ordinal));
        var stop = ShutdownBudget.ParseTimespan(line["TimeoutStopSec=".Length..]);
        var set = PolicyLoader.LoadDirectory(Path.Combine(root, "config", "policies.d"));
        Assert.True(set.IsValid, string.Join("\n", set.Errors));
        var (wait, worst) = ShutdownBudget.For(set.Policies, Workflow);

        Assert.NotNull(stop);
        Assert.Null(ShutdownBudget.Warning(wait, worst, stop, "backupd.service"));
    }
}
