using System.CommandLine;
using Backupd.Daemon.Hosting;

namespace Backupd.Daemon.Cli.Commands;

/// <summary>`backupd daemon`: the long-running service (systemd Type=notify).</summary>
public static class DaemonCommand
{
    public static Command Create()
    {
        var command = new Command("daemon", "Run the backup daemon in the foreground (systemd Type=notify); stops on SIGTERM/SIGINT");
        command.SetAction(async (parse, ct) =>
        {
            var config = GlobalOptions.LoadConfig(parse);
            await DaemonHost.RunAsync(config, ct);
            return ExitCodes.Ok;
        });
        return command;
    }
}
