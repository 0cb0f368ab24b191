using System.CommandLine;

namespace Backupd.Daemon.Cli.Commands;

/// <summary>`backupd verify`: one command, several forms (see <see cref="BackupCommand"/>).</summary>
public static class VerifyCommand
{
    public static Command Create()
    {
        var command = new Command("verify", "Re-read restore points and check their digests: the catalog's ([--domain NAME] [--point ID], recorded), or a whole repository (--repository DIR)");
        command.Options.Add(GlobalOptions.Json);
        RepositoryVerifyHandler.AddOptions(command);
        CatalogVerifyHandler.AddOptions(command);
        CopyVerifyHandler.AddOptions(command);
        command.SetAction(async (parse, ct) =>
        {
            if (CopyVerifyHandler.Applies(parse))
            {
                return await CopyVerifyHandler.RunAsync(parse, ct);
            }
            if (RepositoryVerifyHandler.Applies(parse))
            {
                return await RepositoryVerifyHandler.RunAsync(parse, ct);
            }
            return await CatalogVerifyHandler.RunAsync(parse, ct);
        });
        return command;
    }
}
