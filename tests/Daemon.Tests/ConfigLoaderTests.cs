using Backupd.Daemon.Configuration;

namespace Backupd.Daemon.Tests;

public sealed class ConfigLoaderTests
{
    private const string Minimal = """
        catalog-connection: "Host=/run/postgresql;Database=backupd"
        state-directory: /var/lib/backupd
        policies-directory: policies.d
        """;

    [Fact]
    public void Minimal_file_gets_defaults_and_relative_paths_resolve_against_the_file()
    {
        var config = ConfigLoader.Parse(Minimal, "/etc/backupd/backupd.yaml");

        Assert.Equal("qemu:///system", config.LibvirtUri);
        Assert.Equal("/etc/backupd/policies.d", config.PoliciesDirectory);
        Assert.Equal("/var/lib/backupd", config.StateDirectory);
        Assert.Null(config.ScratchDirectory);
        Assert.Equal(2, config.MaxParallel);
        Assert.Equal(TimeSpan.FromHours(6), config.MisfireGrace);
    }

    [Theory]
    [InlineData("", 120)]
    [InlineData("catalog-retry: 30s", 30)]
    [InlineData("catalog-retry: 0", 0)]
    public void Catalog_retry_is_a_duration_with_a_two_minute_default(string line, int seconds)
    {
        var config = ConfigLoader.Parse(Minimal + "\n" + line, "/etc/backupd/backupd.yaml");
        Assert.Equal(TimeSpan.FromSeconds(seconds), config.CatalogRetry);
    }

    [Fact]
    public void A_bad_catalog_retry_is_reported_at_its_line()
    {
        var e = Assert.Throws<ConfigException>(() => ConfigLoader.Parse(Minimal + "\ncatalog-retry: forever", "/c.yaml"));
        Assert.Contains("/c.yaml:4:16: 'catalog-retry' expects a duration like 30s, 15m, 6h or 2d, got 'forever'", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Reader_wait_and_scrub_cycle_default_reach_the_workflow_and_can_be_set()
    {
        var defaults = Backupd.Daemon.Workflow.LiveBackupSettings.From(ConfigLoader.Parse(Minimal, "/etc/backupd/backupd.yaml")).ToOptions();
        Assert.Equal((TimeSpan.FromMinutes(5), 64), (defaults.ReaderWait, defaults.ScrubCycle));

        var set = Backupd.Daemon.Workflow.LiveBackupSettings.From(ConfigLoader.Parse(Minimal + "\nreader-wait: 30s\nscrub-cycle: 0", "/etc/backupd/backupd.yaml")).ToOptions();
        Assert.Equal((TimeSpan.FromSeconds(30), 0), (set.ReaderWait, set.ScrubCycle));

        var e = Assert.Throws<ConfigException>(() => ConfigLoader.Parse(Minimal + "\nscrub-cycle: -1\nreader-wait: later", "/c.yaml"));
        Assert.Contains("'scrub-cycle' expects a whole number from 0 to 1048576, got '-1'", e.Message);
        Assert.Contains("'reader-wait' expects a duration", e.Message);
    }

    [Fact]
    public void Changed_blocks_is_on_by_default_off_turns_it_off_and_a_bad_value_names_the_line()
    {
        Assert.True(Backupd.Daemon.Workflow.LiveBackupSettings.From(ConfigLoader.Parse(Minimal, "/c.yaml")).ToOptions().ChangedBlockTracking);
        Assert.True(Backupd.Daemon.Workflow.LiveBackupSettings.Defaults.ToOptions().ChangedBlockTracking);
        Assert.False(Backupd.Daemon.Workflow.LiveBackupSettings.From(ConfigLoader.Parse(Minimal + "\nchanged-blocks: off", "/c.yaml")).ToOptions().ChangedBlockTracking);

        var e = Assert.Throws<ConfigException>(() => ConfigLoader.Parse(Minimal + "\nchanged-blocks: maybe", "/c.yaml"));

        Assert.Contains("'changed-blocks' expects on or off, got 'maybe'", e.Message, StringComparison.Ordinal);
        Assert.Matches(@"/c\.yaml:\d+:\d+: 'changed-blocks'", e.Message);
    }

    [Fact]
    public void Agent_timeout_defaults_to_5s_reaches_the_workflow_and_is_range_checked()
    {
        var defaults = Backupd.Daemon.Workflow.LiveBackupSettings.From(ConfigLoader.Parse(Minimal, "/etc/backupd/backupd.yaml")).ToOptions();
        Assert.Equal(TimeSpan.FromSeconds(5), defaults.AgentTimeout);
        var set = Backupd.Daemon.Workflow.LiveBackupSettings.From(ConfigLoader.Parse(Minimal + "\nagent-timeout: 2s", "/etc/backupd/backupd.yaml")).ToOptions();
        Assert.Equal(TimeSpan.FromSeconds(2), set.AgentTimeout);

        var e = Assert.Throws<ConfigException>(() => ConfigLoader.Parse(Minimal + "\nagent-timeout: 1h", "/c.yaml"));
        Assert.Contains("'agent-timeout' expects a duration from 1s to 5m, got '1h'", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Every_problem_is_reported_at_once_with_line_and_column()
    {
        const string text = """
            state-directory: /x
            max-parallel: many
            misfire-grace: soon
            libvirt-url: qemu:///session
            """;

        var e = Assert.Throws<ConfigException>(() => ConfigLoader.Parse(text, "/c.yaml"));

        var lines = e.Message.Split('\n');
        Assert.Contains("/c.yaml:2:15: 'max-parallel' expects a whole number from 1 to 64, got 'many'", lines);
        Assert.Contains("/c.yaml:3:16: 'misfire-grace' expects a duration like 30s, 15m, 6h or 2d, got 'soon'", lines);
        Assert.Contains(lines, l => l.StartsWith("/c.yaml:4:1: unknown key 'libvirt-url' (did you mean 'libvirt-uri'?)", StringComparison.Ordinal));
        Assert.Contains("/c.yaml: missing required key 'policies-directory' (an absolute or relative directory path)", lines);
        Assert.Contains(lines, l => l.StartsWith("/c.yaml: missing required key 'catalog-connection'", StringComparison.Ordinal));
    }

    [Theory]
    [InlineData("", "/c.yaml:1:1: expected a mapping of configuration keys")]
    [InlineData("- a\n- b", "/c.yaml:1:1: expected a mapping of configuration keys")]
    [InlineData("state-directory: [a, b]", "/c.yaml:1:18: 'state-directory' expects a single value")]
    [InlineData("a: b: c", "/c.yaml:1:5: not valid YAML")]
    public void Malformed_files_get_a_positioned_message(string text, string expectedStart)
    {
        var e = Assert.Throws<ConfigException>(() => ConfigLoader.Parse(text, "/c.yaml"));
        Assert.StartsWith(expectedStart, e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Connection_string_can_come_from_a_file_so_the_password_stays_out_of_the_config()
    {
        var dir = Directory.CreateTempSubdirectory("bkd-cfg-").FullName;
        try
        {
            File.WriteAllText(Path.Combine(dir, "catalog.conn"), "Host=db;Password=s3cret\n");
            var config = ConfigLoader.Parse("catalog-connection-file: catalog.conn\nstate-directory: s\npolicies-directory: p", Path.Combine(dir, "b.yaml"));
            Assert.Equal("Host=db;Password=s3cret", config.CatalogConnectionString);
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }

    [Theory]
    [InlineData("Host=remote;Password=s3cret\n", "Host=remote;Password=s3cret")]
    // systemd/backupd.service passes one newline (SetCredential=) when /etc/backupd/catalog.conn is missing.
    [InlineData("\n", "Host=/run/postgresql;Database=backupd")]
    [InlineData(null, "Host=/run/postgresql;Database=backupd")]
    public void A_systemd_credential_wins_unless_it_is_blank_or_missing(string? credential, string expected)
    {
        var dir = Directory.CreateTempSubdirectory("bkd-cred-").FullName;
        try
        {
            if (credential is not null) File.WriteAllText(Path.Combine(dir, ConfigLoader.CatalogCredentialName), credential);
            var config = ConfigLoader.Parse(Minimal, "/etc/backupd/backupd.yaml", dir);
            Assert.Equal(expected, config.CatalogConnectionString);
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }

    [Fact]
    public void A_blank_credential_and_no_connection_in_the_file_is_the_usual_missing_key_error()
    {
        var dir = Directory.CreateTempSubdirectory("bkd-cred-").FullName;
        try
        {
            File.WriteAllText(Path.Combine(dir, ConfigLoader.CatalogCredentialName), "\n");
            var e = Assert.Throws<ConfigException>(() => ConfigLoader.Parse("state-directory: s\npolicies-directory: p", "/c.yaml", dir));
            Assert.Contains("/c.yaml: missing required key 'catalog-connection'", e.Message, StringComparison.Ordinal);
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }

    [Fact]
    public void Deep_nesting_is_a_positioned_error_not_a_stack_overflow()
    {
        var text = Minimal + "\nscratch-directory: " + new string('[', 100_000) + new string(']', 100_000) + "\n";

        var e = Assert.Throws<ConfigException>(() => ConfigLoader.Parse(text, "/c.yaml"));

        Assert.Equal($"/c.yaml:4:{20 + YamlTreeDepth}: nesting deeper than {YamlTreeDepth} levels", e.Message);
    }

    private const int YamlTreeDepth = Backupd.Policies.Yaml.YamlTree.MaxDepth;

    [Fact]
    public async Task Only_a_regular_file_of_bounded_size_is_read_as_the_configuration()
    {
        var dir = Directory.CreateTempSubdirectory("bkd-cfg-").FullName;
        try
        {
            var fifo = Path.Combine(dir, "fifo.yaml");
            using (var mkfifo = System.Diagnostics.Process.Start("mkfifo", [fifo])) await mkfifo.WaitForExitAsync();
            var fifoError = await Task.Run(() => Assert.Throws<ConfigException>(() => ConfigLoader.Load(fifo))).WaitAsync(TimeSpan.FromSeconds(10));
            Assert.Equal($"{fifo}: is a FIFO (named pipe), not a regular file; only regular files are read", fifoError.Message);

            var zero = Path.Combine(dir, "zero.yaml");
            File.CreateSymbolicLink(zero, "/dev/zero");
            Assert.Contains("is a character device", Assert.Throws<ConfigException>(() => ConfigLoader.Load(zero)).Message, StringComparison.Ordinal);

            Assert.Contains("is a directory", Assert.Throws<ConfigException>(() => ConfigLoader.Load(dir)).Message, StringComparison.Ordinal);

            var big = Path.Combine(dir, "big.yaml");
            File.WriteAllText(big, Minimal + "\n#" + new string('x', ConfigLoader.MaxFileBytes));
            Assert.Equal($"{big}: file is {new FileInfo(big).Length} bytes; at most {ConfigLoader.MaxFileBytes} bytes are read", Assert.Throws<ConfigException>(() => ConfigLoader.Load(big)).Message);

            // The connection-string file is read the same way.
            var withFifo = Path.Combine(dir, "b.yaml");
            File.WriteAllText(withFifo, "catalog-connection-file: fifo.yaml\nstate-directory: s\npolicies-directory: p\n");
            var connectionError = await Task.Run(() => Assert.Throws<ConfigException>(() => ConfigLoader.Load(withFifo))).WaitAsync(TimeSpan.FromSeconds(10));
            Assert.Equal($"{withFifo}:1:26: 'catalog-connection-file' cannot be read: {fifo}: is a FIFO (named pipe), not a regular file; only regular files are read", connectionError.Message);
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }

    [Fact]
    public void The_shipped_example_configuration_is_valid()
    {
        var path = Path.Combine(RepoRoot(), "config", "backupd.yaml");
        var config = ConfigLoader.Load(path);
        Assert.Equal("/var/lib/backupd", config.StateDirectory);
        Assert.Equal("/etc/backupd/policies.d", config.PoliciesDirectory);
    }

    [Fact]
    public void Missing_file_names_the_path_and_the_environment_variable()
    {
        var e = Assert.Throws<ConfigException>(() => ConfigLoader.Load("/nonexistent/backupd.yaml"));
        Assert.Equal("/nonexistent/backupd.yaml: configuration file not found (set --config or $BACKUPD_CONFIG)", e.Message);
    }

    [Theory]
    [InlineData("90", 90)]
    [InlineData("90s", 90)]
    [InlineData("15m", 900)]
    [InlineData("6h", 21600)]
    [InlineData("2d", 172800)]
    public void Durations_parse(string text, int seconds)
    {
        Assert.True(Durations.TryParse(text, out var value));
        Assert.Equal(TimeSpan.FromSeconds(seconds), value);
    }

    [Theory]
    [InlineData("")]
    [InlineData("-5m")]
    [InlineData("5w")]
    [InlineData("m")]
    public void Bad_durations_are_rejected(string text) => Assert.False(Durations.TryParse(text, out _));

    internal static string RepoRoot()
    {
        var dir = AppContext.BaseDirectory;
        while (!File.Exists(Path.Combine(dir, "BackupDaemon.sln")))
            dir = Path.GetDirectoryName(dir) ?? throw new InvalidOperationException("BackupDaemon.sln not found above the test directory");
        return dir;
    }
}
