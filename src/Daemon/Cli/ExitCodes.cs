namespace Backupd.Daemon.Cli;

/// <summary>Process exit codes, documented in docs/cli.md. Scripts depend on them: never renumber.</summary>
public static class ExitCodes
{
    public const int Ok = 0;
    /// <summary>The operation ran and failed (a backup failed, doctor found a missing component).</summary>
    public const int Failed = 1;
    /// <summary>Bad usage or invalid configuration: nothing was changed.</summary>
    public const int UsageOrConfig = 2;
    /// <summary>The target (domain, file, restore point) does not exist.</summary>
    public const int NotFound = 3;
    /// <summary>Another run holds the lock for this domain or repository; nothing was done.</summary>
    public const int Busy = 4;
    /// <summary>Verification found damaged data.</summary>
    public const int Damaged = 5;
    /// <summary>The run failed and left something for the operator (an overlay that could not be pivoted).</summary>
    public const int NeedsAttention = 6;
    /// <summary>Stopped by a signal before the command had anything to report (128 + SIGINT, as shells count).</summary>
    public const int Cancelled = 130;
}
