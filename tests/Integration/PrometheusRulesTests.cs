using Backupd.Integration.Fixtures;

namespace Backupd.Integration;

/// <summary>config/prometheus/backupd.rules.yaml is valid for Prometheus and its alerts fire as their unit tests say (Debian `prometheus`: promtool).</summary>
[Trait("Category", "Integration")]
public sealed class PrometheusRulesTests
{
    internal static string RulesDirectory()
    {
        var dir = AppContext.BaseDirectory;
        while (!File.Exists(Path.Combine(dir, "BackupDaemon.sln"))) dir = Path.GetDirectoryName(dir) ?? throw new InvalidOperationException("BackupDaemon.sln not found");
        return Path.Combine(dir, "config", "prometheus");
    }

    internal static async Task<(int ExitCode, string Stdout, string Stderr)> PromtoolAsync(params string[] args)
    {
        if (!File.Exists("/usr/bin/promtool")) throw new InvalidOperationException("promtool is missing: apt-get install -y prometheus (scripts/setup-env installs it)");
        return await Tools.TryRunAsync("/usr/bin/promtool", args);
    }

    [Fact]
    public async Task Rules_pass_promtool_check_and_their_unit_tests()
    {
        var dir = RulesDirectory();
        var check = await PromtoolAsync("check", "rules", Path.Combine(dir, "backupd.rules.yaml"));
        Assert.True(check.ExitCode == 0, check.Stdout + check.Stderr);
        Assert.Contains("SUCCESS: 5 rules found", check.Stdout, StringComparison.Ordinal);
        var test = await PromtoolAsync("test", "rules", Path.Combine(dir, "backupd.rules.test.yaml"));
        Assert.True(test.ExitCode == 0, test.Stdout + test.Stderr);
    }

    [Fact]
    public async Task A_rule_file_with_a_broken_expression_is_refused()
    {
        // The check above could pass by not reading the file: a broken copy must fail it.
        var broken = Path.Combine(Path.GetTempPath(), $"bkd-rules-{Guid.NewGuid():N}.yaml");
        await File.WriteAllTextAsync(broken, (await File.ReadAllTextAsync(Path.Combine(RulesDirectory(), "backupd.rules.yaml"))).Replace("backupd_catalog_up == 0", "backupd_catalog_up ==", StringComparison.Ordinal));
        try
        {
            var check = await PromtoolAsync("check", "rules", broken);
            Assert.NotEqual(0, check.ExitCode);
        }
        finally { File.Delete(broken); }
    }
}
