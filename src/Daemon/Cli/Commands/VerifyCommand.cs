using System.CommandLine;

namespace Backupd.Daemon.Cli.Commands;

/// <summary>`backupd verify`: one command, several forms (see <see cref="BackupCommand"/>).</summary>
public static class VerifyCommand
{
    public static Command Create()
    {
        var command = new Command("verify", "Recompute the digests of every restore point in a repository (--repository DIR)");
        command.Options.Add(GlobalOptions.Json);
        RepositoryVerifyHandler.AddOptions(command);
        command.SetAction(async (parse, ct) =>
        {
            if (RepositoryVerifyHandler.Applies(parse))
            {
                return await RepositoryVerifyHandler.RunAsync(parse, ct);
            }
            await Console.Error.WriteLineAsync("backupd verify: say what to verify: --repository DIR [--point ID]");
            return ExitCodes.UsageOrConfig;
        });
        return command;
    }
}
