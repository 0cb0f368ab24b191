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
        // With --json, stdout always gets exactly one JSON object, errors included (docs/cli.md): every failure
        // is reported here, and a command that ends non-zero without printing gets the error object for its code.
        var (originalOut, originalError) = (Console.Out, Console.Error);
        var stdout = new TrackingWriter(originalOut);
        var stderr = new TrackingWriter(originalError);
        Console.SetOut(stdout);
        Console.SetError(stderr);
        try
        {
            return await RunAsync(args, args.Contains(GlobalOptions.Json.Name), stdout, stderr);
        }
        finally
        {
            Console.SetOut(originalOut);
            Console.SetError(originalError);
        }
    }

    private static async Task<int> RunAsync(string[] args, bool json, TrackingWriter stdout, TrackingWriter stderr)
    {
        var root = Build();
        var parse = root.Parse(args);
        var name = CommandPath(parse);
        if (parse.Errors.Count > 0)
        {
            // Bad usage changes nothing and gets its own documented exit code (System.CommandLine would say 1).
            foreach (var error in parse.Errors)
                await Console.Error.WriteLineAsync($"backupd: {error.Message}");
            await Console.Error.WriteLineAsync($"see 'backupd{(name.Length > 0 ? " " + name : "")} --help'");
            if (json) CliErrors.WriteJson(new CliErrors.Failure(FailureKind.Usage, string.Join("; ", parse.Errors.Select(e => e.Message))));
            return ExitCodes.UsageOrConfig;
        }
        try
        {
            // Our own handlers below; anything unclassified is a crash with a stack trace under BACKUPD_DEBUG.
            var code = await parse.InvokeAsync(new InvocationConfiguration { EnableDefaultExceptionHandler = false });
            if (json && code != ExitCodes.Ok && !stdout.Written)
                CliErrors.WriteJson(new CliErrors.Failure(ExitCodes.KindOf(code), StripPrefix(stderr.LastLine) ?? $"exit code {code}") { ExitCode = code });
            return code;
        }
        catch (Exception e) when (CliErrors.Classify(e) is { } failure)
        {
            return await ReportAsync(failure, (e as CliFailureException)?.Command ?? name, json && !stdout.Written);
        }
        catch (OperationCanceledException)
        {
            return await ReportAsync(new CliErrors.Failure(FailureKind.Cancelled, "cancelled"), name, json && !stdout.Written);
        }
        catch (Exception e) when (Environment.GetEnvironmentVariable("BACKUPD_DEBUG") is null)
        {
            // One line for the operator; BACKUPD_DEBUG=1 lets the exception escape with its stack trace.
            return await ReportAsync(new CliErrors.Failure(FailureKind.Failed, $"error: {e.Message}"), name, json && !stdout.Written);
        }
    }

    private static async Task<int> ReportAsync(CliErrors.Failure failure, string command, bool writeJson)
    {
        await Console.Error.WriteLineAsync($"backupd{(command.Length > 0 ? " " + command : "")}: {failure.Message}");
        if (writeJson) CliErrors.WriteJson(failure);
        return failure.ExitCode;
    }

    /// <summary>"backup", "catalog verify": the command as the user typed it, without the root.</summary>
    private static string CommandPath(ParseResult parse)
    {
        var names = new List<string>();
        for (var r = parse.CommandResult; r is not null && r.Parent is not null; r = r.Parent as System.CommandLine.Parsing.CommandResult)
            names.Insert(0, r.Command.Name);
        return string.Join(' ', names);
    }

    /// <summary>"backupd backup: no such domain" → "no such domain" (the JSON message has no prefix).</summary>
    private static string? StripPrefix(string? line) =>
        line is not null && line.StartsWith("backupd", StringComparison.Ordinal) && line.IndexOf(": ", StringComparison.Ordinal) is > 0 and var i ? line[(i + 2)..] : line;

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
        root.Subcommands.Add(DrillCommand.Create());
        root.Subcommands.Add(CatalogCommand.Create());
        root.Subcommands.Add(ListCommand.Create());
        root.Subcommands.Add(ShowCommand.Create());
        root.Subcommands.Add(StatusCommand.Create());
        root.Subcommands.Add(PolicyCommand.Create());
        root.Subcommands.Add(PruneCommand.Create());
        root.Subcommands.Add(ForgetCommand.Create());
        root.Subcommands.Add(KeyCommand.Create());
        root.Subcommands.Add(ChainCommand.Create());
        root.Subcommands.Add(MoveDiskCommand.Create());
        root.Subcommands.Add(NotifyCommand.Create());
        root.Subcommands.Add(CopyCommand.Create());
        root.Subcommands.Add(ServeCommand.Create());
        return root;
    }

    public static string Version =>
        typeof(CommandTree).Assembly.GetCustomAttribute<AssemblyInformationalVersionAttribute>()?.InformationalVersion.Split('+')[0]
        ?? "0.0.0";
}
