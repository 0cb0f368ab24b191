using Backupd.Daemon.Cli;
using Backupd.Daemon.Cli.Commands;

namespace Backupd.Daemon.Tests.Cli;

/// <summary>`backup --domain` goes through the catalog whenever a configuration is named; --no-catalog opts out, and says so.</summary>
public sealed class BackupCatalogChoiceTests
{
    private static (bool UseCatalog, string? Note) Choose(params string[] args) => CatalogBackupHandler.Choose(CommandTree.Build().Parse(args));

    [Fact]
    public void An_explicit_configuration_means_the_catalog()
    {
        var (useCatalog, note) = Choose("--config", "/nonexistent/b.yaml", "backup", "--domain", "vm1", "--to", "/tmp/r");
        Assert.True(useCatalog);
        Assert.Null(note);
    }

    [Fact]
    public void No_catalog_runs_repository_only_with_a_note_even_with_a_configuration()
    {
        var (useCatalog, note) = Choose("--config", "/nonexistent/b.yaml", "backup", "--domain", "vm1", "--to", "/tmp/r", "--no-catalog");
        Assert.False(useCatalog);
        Assert.Contains("not recorded in the catalog", note, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData(null, false, false)]
    [InlineData("/etc/other.yaml", false, true)]
    [InlineData(null, true, true)]
    public void Without_config_option_the_environment_or_the_default_file_decides(string? environment, bool defaultFileExists, bool expectCatalog)
    {
        var parse = CommandTree.Build().Parse(["backup", "--domain", "vm1", "--to", "/tmp/r"]);
        var (useCatalog, note) = CatalogBackupHandler.Choose(parse, environment, path => defaultFileExists && path == Configuration.ConfigLoader.DefaultPath);
        Assert.Equal(expectCatalog, useCatalog);
        if (expectCatalog) Assert.Null(note);
        else Assert.Contains("not recorded in a catalog", note, StringComparison.Ordinal);
    }

    [Fact]
    public void The_old_catalog_switch_is_gone()
    {
        var parse = CommandTree.Build().Parse(["backup", "--domain", "vm1", "--to", "/tmp/r", "--catalog"]);
        Assert.NotEmpty(parse.Errors);
    }
}
