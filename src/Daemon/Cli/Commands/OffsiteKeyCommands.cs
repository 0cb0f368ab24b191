using System.CommandLine;
using Backupd.Daemon.Offsite;
using Backupd.Storage.Offsite;

namespace Backupd.Daemon.Cli.Commands;

/// <summary>
/// `backupd key create|export|import`: the offsite key that encrypts copy repositories. Without it nothing in a
/// copy can be read, by anyone: print it (`export --paper`) and keep the paper away from the machines.
/// </summary>
internal static class OffsiteKeyCommands
{
    public static Command Create()
    {
        var to = new Option<string?>("--to") { Description = $"Where to write the new key (0600; default {OffsiteKey.DefaultPath}); an existing file is never replaced" };
        var command = new Command("create", "Create a new offsite key for copy repositories");
        command.Options.Add(to);
        command.Options.Add(GlobalOptions.Json);
        command.SetAction((parse, _) => RepositoryCli.GuardAsync("key create", () =>
        {
            var path = Path.GetFullPath(parse.GetValue(to) ?? OffsiteKey.DefaultPath);
            var key = OffsiteKey.Generate();
            key.Save(path);
            if (parse.GetValue(GlobalOptions.Json))
                JsonOutput.Write(new { keyFile = path, fingerprint = key.Fingerprint });
            else
                Console.WriteLine($"created offsite key {path} (fingerprint {key.Fingerprint}). Print it now (`backupd key export --paper --key {path}`) and keep the paper safe: without this key no copy can be read");
            return Task.FromResult(ExitCodes.Ok);
        }));
        return command;
    }

    public static Command Export()
    {
        var key = OffsiteCli.KeyOption();
        var paper = new Option<bool>("--paper") { Description = "Print the key as text to write down or print (4 lines with check digits)", Required = true };
        var command = new Command("export", "Print the offsite key for a paper backup");
        command.Options.Add(key);
        command.Options.Add(paper);
        command.SetAction((parse, _) => RepositoryCli.GuardAsync("key export", () =>
        {
            Console.Write(OffsiteCli.LoadKey(parse.GetValue(key)).ToPaper());
            return Task.FromResult(ExitCodes.Ok);
        }));
        return command;
    }

    public static Command Import()
    {
        var paper = new Option<FileInfo>("--paper") { Description = "The text `key export --paper` printed, typed back in a file ('-': stdin)", Required = true };
        var to = new Option<string>("--to") { Description = "Where to write the key (0600); an existing file is never replaced", Required = true };
        var command = new Command("import", "Write an offsite key back from its paper copy (a typing error is named by line)");
        command.Options.Add(paper);
        command.Options.Add(to);
        command.SetAction((parse, _) => RepositoryCli.GuardAsync("key import", () =>
        {
            var source = parse.GetValue(paper)!;
            var text = source.Name == "-" ? Console.In.ReadToEnd() : File.ReadAllText(source.FullName);
            OffsiteKey key;
            try
            {
                key = OffsiteKey.FromPaper(text);
            }
            catch (FormatException e)
            {
                return Task.FromResult(RepositoryCli.Fail("key import", $"{source.FullName}: {e.Message}", FailureKind.Usage));
            }
            var path = Path.GetFullPath(parse.GetValue(to)!);
            key.Save(path);
            Console.WriteLine($"wrote offsite key {path} (fingerprint {key.Fingerprint})");
            return Task.FromResult(ExitCodes.Ok);
        }));
        return command;
    }
}
