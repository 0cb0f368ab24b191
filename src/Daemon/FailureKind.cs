namespace Backupd.Daemon;

/// <summary>
/// What kind of failure ended an operation: carried by exceptions (not exit codes, so Restore or Runs need not know
/// the command line). The CLI maps it to an exit code in one place (<c>Cli/ExitCodes.For</c>) and prints it, kebab-cased,
/// as the JSON error's "kind" (docs/cli.md).
/// </summary>
public enum FailureKind
{
    /// <summary>The operation ran and failed.</summary>
    Failed,
    /// <summary>The command line: unknown option, bad value, an option of another form.</summary>
    Usage,
    /// <summary>The configuration file.</summary>
    Config,
    NotFound,
    DomainNotFound,
    Busy,
    Damaged,
    NeedsAttention,
    Catalog,
    Libvirt,
    Cancelled,
    // A refused live backup (Workflow.RefusalKind), one kind each.
    BadRequest,
    TargetUnavailable,
    QuiesceUnavailable,
    InsufficientSpace,
    NeedsRecovery,
}
