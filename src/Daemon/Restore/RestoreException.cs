namespace Backupd.Daemon.Restore;

/// <summary>Why a restore was refused or failed, as a <see cref="FailureKind"/> (the CLI maps it to an exit code). Refusals change nothing.</summary>
public sealed class RestoreException : Exception
{
    public RestoreException(FailureKind kind, string message) : base(message) => Kind = kind;
    public RestoreException(string message, Exception inner) : base(message, inner) => Kind = FailureKind.Failed;
    public RestoreException() : this(FailureKind.Failed, "restore failed") { }
    public RestoreException(string message) : this(FailureKind.Failed, message) { }

    public FailureKind Kind { get; }
}
