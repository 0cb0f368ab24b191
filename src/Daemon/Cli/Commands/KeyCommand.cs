using System.CommandLine;
using Backupd.Storage.Repository;

namespace Backupd.Daemon.Cli.Commands;

/// <summary>
/// `backupd key move-out --repository DIR`: moves the repository key from REPO/key to the host key directory
/// (/etc/backupd/keys, or BACKUPD_KEY_DIRECTORY), so that whoever can write the repository's storage but not read
/// that directory cannot forge its documents (docs/repository-format.md, "Threat model").
/// </summary>
public static class KeyCommand
{
    public static readonly Option<string> Repository = new("--repository") { Description = "The repository directory", Required = true };

    public static Command Create()
    {
        var command = new Command("key", "Where a repository's key is kept; the offsite key of copies (create, export --paper, import --paper)");
        var moveOut = new Command("move-out", "Move the repository key out of the repository into the host key directory (back it up separately!); exit 4 while a writer is active");
        moveOut.Options.Add(Repository);
        moveOut.Options.Add(GlobalOptions.Json);
        moveOut.SetAction(async (parse, _) =>
        {
            var directory = Path.GetFullPath(parse.GetValue(Repository)!);
            var json = parse.GetValue(GlobalOptions.Json);
            // Failures leave through GuardAsync to CommandTree, which prints them (one JSON error object with --json).
            var keyPath = await RepositoryCli.GuardAsync("key move-out", () =>
            {
                // Opening creates a missing repository: never do that here.
                if (!RepositoryCli.IsRepository(directory))
                    throw new DirectoryNotFoundException($"{directory} holds no repository (no repository.json)");
                using var repository = BackupRepository.Open(directory);
                return Task.FromResult(repository.MoveKeyOut());
            });
            if (json)
                JsonOutput.Write(new { repository = directory, keyFile = keyPath });
            else
                Console.WriteLine($"the key of {directory} is now {keyPath}; the repository holds no key any more. Keep a copy of it elsewhere: without it, verify, restore and backup refuse the repository");
            return ExitCodes.Ok;
        });
        command.Subcommands.Add(moveOut);
        command.Subcommands.Add(OffsiteKeyCommands.Create());
        command.Subcommands.Add(OffsiteKeyCommands.Export());
        command.Subcommands.Add(OffsiteKeyCommands.Import());
        return command;
    }
}
