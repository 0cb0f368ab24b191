using System.CommandLine;

namespace Backupd.Daemon.Cli.Commands;

/// <summary>`backupd restore`: one command, several forms (see <see cref="BackupCommand"/>).</summary>
public static class RestoreCommand
{
    public static Command Create()
    {
        var command = new Command("restore", "Restore a domain's restore point from the catalog (--domain), or one file of a repository (--repository --file)");
        command.Options.Add(GlobalOptions.Json);
        FileRestoreHandler.AddOptions(command);
        DomainRestoreHandler.AddOptions(command);
        CopyRestoreHandler.AddOptions(command);
        command.SetAction(async (parse, ct) =>
        {
            if (CopyRestoreHandler.Applies(parse))
            {
                return CopyDomainRestoreHandler.Applies(parse) ? await CopyDomainRestoreHandler.RunAsync(parse, ct) : await CopyRestoreHandler.RunAsync(parse, ct);
            }
            if (DomainRestoreHandler.Applies(parse))
            {
                return await DomainRestoreHandler.RunAsync(parse, ct);
            }
            if (FileRestoreHandler.Applies(parse))
            {
                return await FileRestoreHandler.RunAsync(parse, ct);
            }
            await Console.Error.WriteLineAsync("backupd restore: say what to restore: --domain NAME [--point ID | --at TIME] (--to DIR | --as-domain NEW | --in-place --force), or --repository DIR --file NAME [--point ID] --to PATH, or --from TARGET --point ID --file NAME --to PATH, or --domain NAME --from TARGET [--point ID] (--to DIR | --as-domain NEW | --in-place --force)");
            return ExitCodes.UsageOrConfig;
        });
        return command;
    }
}
