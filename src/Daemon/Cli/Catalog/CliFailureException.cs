namespace Backupd.Daemon.Cli.Catalog;

/// <summary>A command ends with this exit code (from <see cref="ExitCodes"/>) and message; nothing more to add.</summary>
public sealed class CliFailureException : Exception
{
    public CliFailureException(int exitCode, string message, string? kind = null) : base(message)
    {
        ExitCode = exitCode;
        Kind = kind;
    }
    public CliFailureException() : this(ExitCodes.Failed, "failed") { }
    public CliFailureException(string message) : this(ExitCodes.Failed, message) { }
    public CliFailureException(string message, Exception inner) : base(message, inner) => ExitCode = ExitCodes.Failed;

    public int ExitCode { get; }

    /// <summary>The JSON error's kind (usage, not-found, …); null: the one <see cref="ExitCode"/> stands for.</summary>
    public string? Kind { get; }

    /// <summary>The command as the stderr line names it ("backupd restore: …"); null: the command that ran.</summary>
    public string? Command { get; init; }
}
