namespace Backupd.Daemon.Cli.Catalog;

/// <summary>A command ends with this exit code (from <see cref="ExitCodes"/>) and message; nothing more to add.</summary>
public sealed class CliFailureException : Exception
{
    public CliFailureException(int exitCode, string message) : base(message) => ExitCode = exitCode;
    public CliFailureException() : this(ExitCodes.Failed, "failed") { }
    public CliFailureException(string message) : this(ExitCodes.Failed, message) { }
    public CliFailureException(string message, Exception inner) : base(message, inner) => ExitCode = ExitCodes.Failed;

    public int ExitCode { get; }
}
