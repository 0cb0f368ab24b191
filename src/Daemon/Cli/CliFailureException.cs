namespace Backupd.Daemon.Cli;

/// <summary>
/// A command ends with this failure: its <see cref="Kind"/> (the exit code is <see cref="ExitCodes.For"/> of it) and
/// message; nothing more to add. <see cref="CommandTree"/> reports it like any other failure (stderr, JSON).
/// </summary>
public sealed class CliFailureException : Exception
{
    public CliFailureException(FailureKind kind, string message) : base(message) => Kind = kind;
    public CliFailureException() : this(FailureKind.Failed, "failed") { }
    public CliFailureException(string message) : this(FailureKind.Failed, message) { }
    public CliFailureException(string message, Exception inner) : base(message, inner) => Kind = FailureKind.Failed;

    public FailureKind Kind { get; }

    /// <summary>The command as the stderr line names it ("backupd restore: …"); null: the command that ran.</summary>
    public string? Command { get; init; }
}
