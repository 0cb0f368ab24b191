using System.CommandLine;

namespace Backupd.Daemon.Cli.Commands;

/// <summary>`backupd restore`: one command, several forms (see <see cref="BackupCommand"/>).</summary>
public static class RestoreCommand
{
    public static Command Create()
    {
        var command = new Command("restore", "Restore a file of a restore point to a new path (--repository DIR --file NAME --to PATH)");
        command.Options.Add(GlobalOptions.Json);
        FileRestoreHandler.AddOptions(command);
        command.SetAction(async (parse, ct) =>
        {
            if (FileRestoreHandler.Applies(parse))
            {
                return await FileRestoreHandler.RunAsync(parse, ct);
            }
            await Console.Error.WriteLineAsync("backupd restore: say what to restore: --repository DIR --file NAME [--point ID] --to PATH");
            return ExitCodes.UsageOrConfig;
        });
        return command;
    }
}
