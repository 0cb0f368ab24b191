using System.CommandLine;

namespace Backupd.Daemon.Cli.Commands;

/// <summary>
/// `backupd backup`: one command, several forms. Each form is a handler class that adds its own options and
/// says whether the parsed options select it; the first that applies runs. Add a form by adding its handler here.
/// </summary>
public static class BackupCommand
{
    public static Command Create()
    {
        var command = new Command("backup", "Back up a file (--file) into a repository as a new restore point");
        command.Options.Add(GlobalOptions.Json);
        FileBackupHandler.AddOptions(command);
        command.SetAction(async (parse, ct) =>
        {
            if (FileBackupHandler.Applies(parse))
            {
                return await FileBackupHandler.RunAsync(parse, ct);
            }
            await Console.Error.WriteLineAsync("backupd backup: say what to back up: --file PATH --to REPOSITORY_DIR");
            return ExitCodes.UsageOrConfig;
        });
        return command;
    }
}
