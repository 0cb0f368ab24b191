using System.CommandLine;
using Backupd.Storage.Offsite;

namespace Backupd.Daemon.Cli.Commands;

/// <summary>
/// `backupd serve --repository PATH [--append-only]`: the remote end of copies over SSH. Speaks the serve protocol
/// on stdin/stdout (nothing else may be printed there) and never holds the key. Meant to be forced by
/// authorized_keys: <c>command="backupd serve --repository /srv/copies --append-only",restrict ssh-ed25519 ...</c>.
/// </summary>
public static class ServeCommand
{
    public static Command Create()
    {
        var repository = new Option<string>("--repository") { Description = "The copy repository directory (created on the first copy)", Required = true };
        var appendOnly = new Option<bool>("--append-only") { Description = "Refuse deletes (and, as always, overwrites): a compromised client cannot remove history" };
        var command = new Command("serve", "Serve a copy repository on stdin/stdout for `backupd copy --to ssh://...` (run by ssh, not by hand)");
        command.Options.Add(repository);
        command.Options.Add(appendOnly);
        command.SetAction((parse, ct) => RepositoryCli.GuardAsync("serve", () => Task.Run(() =>
        {
            using var store = LocalChunkStore.Open(parse.GetValue(repository)!, parse.GetValue(appendOnly));
            using var input = Console.OpenStandardInput();
            using var output = Console.OpenStandardOutput();
            new ChunkServer(input, output, store).Run();
            return ExitCodes.Ok;
        }, ct)));
        return command;
    }
}
