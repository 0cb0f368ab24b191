using Backupd.Policies.Retention;
using Backupd.Policies.Schedules;
using Backupd.Policies.Selection;

namespace Backupd.Policies.Model;

/// <summary>One validated backup policy, as loaded from a policy file. Immutable.</summary>
public sealed record PolicyDefinition
{
    /// <summary>Unique across all policy files; letters, digits, '.', '_' and '-'.</summary>
    public required string Name { get; init; }
    /// <summary>Where the policy was defined (file, line, column of its first key), for messages.</summary>
    public required SourcePosition Source { get; init; }
    /// <summary>libvirt URI; null means the daemon configuration's <c>libvirt-uri</c>.</summary>
    public string? Connection { get; init; }
    public required NameSelection Domains { get; init; }
    /// <summary>Disk targets (vda, sdb, …) to back up; <see cref="NameSelection.All"/> when not given.</summary>
    public required NameSelection Disks { get; init; }
    public required ScheduleDefinition Schedule { get; init; }
    public QuiesceMode Quiesce { get; init; } = QuiesceMode.Preferred;
    /// <summary>Absolute repository directory (relative paths are resolved against the policy file's directory).</summary>
    public required string Repository { get; init; }
    /// <summary>Delta block size in bytes for a file's first backup (the repository's range, <see cref="PolicyDefaults.MinBlockSize"/>..<see cref="PolicyDefaults.MaxBlockSize"/>); default 64 KiB (the qcow2 cluster size).</summary>
    public int BlockSize { get; init; } = PolicyDefaults.BlockSize;
    /// <summary>
    /// Changed-block tracking's safety net: every Nth backup of a disk and/or every K days it is read in full, counting the blocks
    /// that changed although the dirty bitmap called them clean (must be 0); 1 reads in full every time. Default every
    /// <see cref="PolicyDefaults.FullEvery"/>th backup.
    /// </summary>
    public FullReadPeriod FullEvery { get; init; } = FullReadPeriod.Default;
    public RetentionRules Retention { get; init; } = RetentionRules.KeepAll;
    public VerifyOptions Verify { get; init; } = VerifyOptions.None;
    /// <summary>At most this many domains of this policy are backed up at once.</summary>
    public int MaxParallel { get; init; } = 1;
    /// <summary>Time-box for step 2 (copy); when it expires the copy is cancelled and the commit still runs.</summary>
    public TimeSpan CopyTimeout { get; init; } = PolicyDefaults.CopyTimeout;
    /// <summary>Time-box for step 3 (active commit + pivot).</summary>
    public TimeSpan CommitTimeout { get; init; } = PolicyDefaults.CommitTimeout;
    /// <summary>Copy bandwidth limit in bytes per second; null is unlimited.</summary>
    public long? CopyBandwidth { get; init; }
    /// <summary>Block-commit bandwidth limit in bytes per second; null is unlimited.</summary>
    public long? CommitBandwidth { get; init; }
    /// <summary>Chain maintenance after each backup (`chains:`); null: chains are left as they are.</summary>
    public ChainMaintenance? Chains { get; init; }
    /// <summary>Copy targets the new point goes to after each backup (`copies:`); empty: none.</summary>
    public IReadOnlyList<CopyDestination> Copies { get; init; } = [];
    /// <summary>Restore drills of the newest point of each domain (`drill:`); null: never drilled on a schedule.</summary>
    public DrillPolicy? Drill { get; init; }
    /// <summary>Names of notification targets from the daemon configuration that also get this policy's events.</summary>
    public IReadOnlyList<string> Notify { get; init; } = [];
    /// <summary>Where each <see cref="Notify"/> name stands (same order), for the daemon's check that the target exists.</summary>
    public IReadOnlyList<SourcePosition> NotifyPositions { get; init; } = [];
}

/// <summary>`chains: {max-depth: N, method: commit|pull}`: after a domain's backup, disks deeper than N are shortened to N.</summary>
public sealed record ChainMaintenance(int MaxDepth, string Method)
{
    public const int MaxDepthLimit = 64;
}

/// <summary>
/// `drill: {schedule: ..., timeout: 5m, check: "CMD", trust-saved-xml: false}`: on the schedule, the newest point of each
/// domain is booted in a throwaway isolated domain; it passes when the guest agent answers (and CHECK, run in the guest,
/// exits 0) within the timeout.
/// </summary>
public sealed record DrillPolicy(ScheduleDefinition Schedule, TimeSpan Timeout, string? Check, bool TrustSavedXml)
{
    public static readonly TimeSpan DefaultTimeout = TimeSpan.FromMinutes(5);
    public static readonly TimeSpan MaxTimeout = TimeSpan.FromHours(2);
}

/// <summary>Defaults that apply when a policy omits a key (documented in docs/policies.md).</summary>
public static class PolicyDefaults
{
    public const int BlockSize = 64 * 1024;
    /// <summary>full-every: by default a full (safety-net) read every 7th backup of a disk (FullReadPeriod.Default).</summary>
    public const int FullEvery = 7;
    // The repository's range (Storage's BlockHasher). Policies and Storage do not know each other (docs: DESIGN), so the
    // numbers stand here too and Policies.Tests proves they agree: a policy that passes here is never refused there.
    public const int MinBlockSize = 4 * 1024;
    public const int MaxBlockSize = 4 * 1024 * 1024;

    /// <summary>A power of two within [<see cref="MinBlockSize"/>, <see cref="MaxBlockSize"/>].</summary>
    public static bool IsValidBlockSize(long bytes) => bytes is >= MinBlockSize and <= MaxBlockSize && (bytes & (bytes - 1)) == 0;
    public const int MaxParallelLimit = 64;
    public const string TimeZone = "UTC";
    public static readonly TimeSpan CopyTimeout = TimeSpan.FromHours(6);
    public static readonly TimeSpan CommitTimeout = TimeSpan.FromMinutes(10);
}

/// <summary>Whether the snapshot asks the guest agent to freeze file systems.</summary>
public enum QuiesceMode
{
    /// <summary>Fail the run when the guest agent does not answer.</summary>
    Required,
    /// <summary>Quiesce when the agent answers, otherwise take a crash-consistent snapshot.</summary>
    Preferred,
    /// <summary>Never ask the agent.</summary>
    Off,
}

/// <summary>Verification of restore points: right after each backup, and/or on a schedule of its own.</summary>
public sealed record VerifyOptions(bool AfterBackup, ScheduleDefinition? Schedule)
{
    public static readonly VerifyOptions None = new(false, null);
}

/// <summary>A file position, 1-based like editors show it.</summary>
public sealed record SourcePosition(string File, int Line, int Column)
{
    public override string ToString() => $"{File}:{Line}:{Column}";
}
