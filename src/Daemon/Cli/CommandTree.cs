using System.CommandLine;
using System.Reflection;
using Backupd.Daemon.Cli.Commands;
using Backupd.Daemon.Configuration;

namespace Backupd.Daemon.Cli;

/// <summary>
/// The `backupd` command tree. Each command lives in its own file under Commands/ and is added here,
/// one line each, so the whole surface of the tool is visible in one place.
/// </summary>
public static class CommandTree
{
    public static async Task<int> RunAsync(string[] args)
    {
        var root = Build();
        var parse = root.Parse(args);
        if (parse.Errors.Count > 0)
        {
            // Bad usage changes nothing and gets its own documented exit code (System.CommandLine would say 1).
            foreach (var error in parse.Errors)
                await Console.Error.WriteLineAsync($"backupd: {error.Message}");
            var command = parse.CommandResult.Command == root ? "" : $" {parse.CommandResult.Command.Name}";
            await Console.Error.WriteLineAsync($"see 'backupd{command} --help'");
            return ExitCodes.UsageOrConfig;
        }
        try
        {
            // Our own handler below maps configuration errors to exit code 2; anything else is a crash with a stack trace.
            return await parse.InvokeAsync(new InvocationConfiguration { EnableDefaultExceptionHandler = false });
        }
        catch (ConfigException e)
        {
            await Console.Error.WriteLineAsync($"backupd: {e.Message}");
            return ExitCodes.UsageOrConfig;
        }
        catch (OperationCanceledException)
        {
            await Console.Error.WriteLineAsync("backupd: cancelled");
            return 130;
        }
        catch (Exception e) when (Environment.GetEnvironmentVariable("BACKUPD_DEBUG") is null)
        {
            // One line for the operator; BACKUPD_DEBUG=1 lets the exception escape with its stack trace.
            await Console.Error.WriteLineAsync($"backupd: error: {e.Message}");
            return ExitCodes.Failed;
        }
    }

    public static RootCommand Build()
    {
        var root = new RootCommand("backupd - live backups of libvirt/QEMU virtual machines into a versioned repository");
        root.Options.Add(GlobalOptions.Config);

        root.Subcommands.Add(DoctorCommand.Create());
        root.Subcommands.Add(DaemonCommand.Create());
        root.Subcommands.Add(BackupCommand.Create());
        root.Subcommands.Add(RestoreCommand.Create());
        root.Subcommands.Add(VerifyCommand.Create());
        root.Subcommands.Add(RecoverCommand.Create());
        root.Subcommands.Add(CatalogCommand.Create());
        root.Subcommands.Add(ListCommand.Create());
        root.Subcommands.Add(ShowCommand.Create());
        root.Subcommands.Add(StatusCommand.Create());
        root.Subcommands.Add(PolicyCommand.Create());
        root.Subcommands.Add(PruneCommand.Create());
        root.Subcommands.Add(ForgetCommand.Create());
        root.Subcommands.Add(KeyCommand.Create());
        return root;
    }

    public static string Version =>
        typeof(CommandTree).Assembly.GetCustomAttribute<AssemblyInformationalVersionAttribute>()?.InformationalVersion.Split('+')[0]
        ?? "0.0.0";
}
