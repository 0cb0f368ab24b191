namespace Backupd.Daemon.Restore;

/// <summary>Why a restore was refused or failed; <see cref="ExitCode"/> is one of <see cref="Cli.ExitCodes"/>. Refusals change nothing.</summary>
public sealed class RestoreException : Exception
{
    public RestoreException(int exitCode, string message) : base(message) => ExitCode = exitCode;
    public RestoreException(string message, Exception inner) : base(message, inner) => ExitCode = Cli.ExitCodes.Failed;
    public RestoreException() : this(Cli.ExitCodes.Failed, "restore failed") { }
    public RestoreException(string message) : this(Cli.ExitCodes.Failed, message) { }

    public int ExitCode { get; }
}
