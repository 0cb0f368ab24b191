using System.Text.Json;

namespace Backupd.Daemon.Cli;

/// <summary>
/// Process exit codes, documented in docs/cli.md, and the one map from a <see cref="FailureKind"/> to its code
/// (a test holds it equal to the doc's table). Scripts depend on them: never renumber.
/// </summary>
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

    /// <summary>The exit code of a failure of <paramref name="kind"/>.</summary>
    public static int For(FailureKind kind) => kind switch
    {
        FailureKind.Usage or FailureKind.Config or FailureKind.BadRequest or FailureKind.TargetUnavailable => UsageOrConfig,
        FailureKind.NotFound or FailureKind.DomainNotFound => NotFound,
        FailureKind.Busy => Busy,
        FailureKind.Damaged => Damaged,
        FailureKind.NeedsAttention or FailureKind.NeedsRecovery => NeedsAttention,
        FailureKind.Cancelled => Cancelled,
        _ => Failed,
    };

    /// <summary>The kind a bare exit code stands for when nothing more precise is known (a command that returned it without a message).</summary>
    public static FailureKind KindOf(int exitCode) => exitCode switch
    {
        UsageOrConfig => FailureKind.Usage,
        NotFound => FailureKind.NotFound,
        Busy => FailureKind.Busy,
        Damaged => FailureKind.Damaged,
        NeedsAttention => FailureKind.NeedsAttention,
        Cancelled => FailureKind.Cancelled,
        _ => FailureKind.Failed,
    };

    /// <summary>The JSON error's word for <paramref name="kind"/>: "domain-not-found", "needs-attention".</summary>
    public static string Name(FailureKind kind) => JsonNamingPolicy.KebabCaseLower.ConvertName(kind.ToString());
}
