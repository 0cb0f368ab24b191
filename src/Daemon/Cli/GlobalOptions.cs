using System.CommandLine;
using Backupd.Daemon.Configuration;

namespace Backupd.Daemon.Cli;

/// <summary>Options every command accepts, and the one way commands load the daemon configuration.</summary>
public static class GlobalOptions
{
    public static readonly Option<string?> Config = new("--config")
    {
        Description = $"Daemon configuration file (default: ${ConfigLoader.EnvironmentVariable} or {ConfigLoader.DefaultPath})",
        Recursive = true,
    };

    public static readonly Option<bool> Json = new("--json")
    {
        Description = "Print machine-readable JSON instead of tables",
    };

    /// <summary>Loads the configuration named by --config, $BACKUPD_CONFIG or the default path. Throws <see cref="ConfigException"/>.</summary>
    public static DaemonConfig LoadConfig(ParseResult parse) => ConfigLoader.Load(parse.GetValue(Config));
}
