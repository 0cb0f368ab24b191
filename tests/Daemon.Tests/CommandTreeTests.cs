using Backupd.Daemon.Cli;

namespace Backupd.Daemon.Tests;

public sealed class CommandTreeTests
{
    [Fact]
    public void Version_is_the_assembly_version() => Assert.Equal("0.1.0", CommandTree.Version);

    [Fact]
    public async Task Configuration_errors_exit_with_code_2()
    {
        var code = await CommandTree.RunAsync(["--config", "/nonexistent/b.yaml", "doctor"]);
        Assert.Equal(ExitCodes.UsageOrConfig, code);
    }

    [Fact]
    public void Every_documented_top_level_command_exists()
    {
        var names = CommandTree.Build().Subcommands.Select(c => c.Name).ToHashSet();
        Assert.Superset(new HashSet<string> { "doctor", "daemon" }, names);
        var doc = File.ReadAllText(Path.Combine(ConfigLoaderTests.RepoRoot(), "docs", "cli.md"));
        foreach (var name in names)
            Assert.Contains($"backupd {name}", doc, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("backup", "--domain", "vm1", "--to", "/tmp/r", "--bandwidth", "fast")]
    [InlineData("no-such-command")]
    [InlineData("doctor", "--no-such-option")]
    public async Task Usage_errors_exit_with_code_2(params string[] args)
    {
        Assert.Equal(ExitCodes.UsageOrConfig, await CommandTree.RunAsync(args));
    }
}
