using Backupd.Policies.Model;

namespace Backupd.Daemon.Workflow;

/// <summary>What the copy represents; <see cref="ConsistencyNames.Of"/> is its stored and printed word.</summary>
public enum Consistency
{
    /// <summary>Guest filesystems were frozen by the agent for the snapshot.</summary>
    ApplicationConsistent,
    /// <summary>Like a power cut at the snapshot instant (all disks at the same instant).</summary>
    CrashConsistent,
    /// <summary>The domain was shut off: the files were copied as they rest.</summary>
    ShutOff,
}

/// <summary>The one place a <see cref="Consistency"/> becomes the word the catalog, the JSON and the summary use.</summary>
public static class ConsistencyNames
{
    /// <summary>"application-consistent", "crash-consistent" or "shut-off".</summary>
    public static string Of(Consistency consistency) => consistency switch
    {
        Consistency.ApplicationConsistent => "application-consistent",
        Consistency.CrashConsistent => "crash-consistent",
        Consistency.ShutOff => "shut-off",
        _ => throw new ArgumentOutOfRangeException(nameof(consistency), consistency, null),
    };
}

public enum RunOutcome
{
    Succeeded,
    /// <summary>The copy failed; the domain is back on its base images.</summary>
    Failed,
    /// <summary>An overlay could not be merged back: the domain still runs on it. See docs/operations.md.</summary>
    NeedsAttention,
}

/// <summary>One backup of one domain. Include empty = every eligible disk. <see cref="QuiesceMode"/> is the policies' own (one enum for both).</summary>
public sealed record BackupRequest(
    string Domain,
    IReadOnlyList<string> IncludeDisks,
    IReadOnlyList<string> ExcludeDisks,
    QuiesceMode Quiesce = QuiesceMode.Preferred)
{
    /// <summary>Changed-block tracking: --full and the policy's full-every.</summary>
    public ReadRequest Read { get; init; } = new();
}

/// <summary>Workflow settings that come from the daemon configuration, plus time boxes.</summary>
public sealed record WorkflowOptions
{
    public required string StateDirectory { get; init; }
    /// <summary>Null: overlays go beside each base image (what AppArmor allows by default).</summary>
    public string? ScratchDirectory { get; init; }
    /// <summary>Free space the overlay location must have before a snapshot is taken.</summary>
    public long MinimumOverlayFreeBytes { get; init; } = 1L << 30;
    /// <summary>Time box for an active commit to reach READY, per attempt.</summary>
    public TimeSpan CommitReadyTimeout { get; init; } = TimeSpan.FromMinutes(30);
    /// <summary>Time box for an asynchronous pivot to finish, per attempt.</summary>
    public TimeSpan PivotTimeout { get; init; } = TimeSpan.FromMinutes(1);
    public int CommitAttempts { get; init; } = 3;
    public TimeSpan CommitRetryDelay { get; init; } = TimeSpan.FromSeconds(2);
    /// <summary>Copy read rate limit in bytes per second (the whole run shares it); null is unlimited.</summary>
    public long? CopyBandwidth { get; init; }
    /// <summary>Active-commit rate limit in bytes per second (per disk, applied by QEMU); null is unlimited.</summary>
    public long? CommitBandwidth { get; init; }
    /// <summary>How long the repository's writer lock waits, before the snapshot, for restores/verifies of the group; then the run is refused (Busy).</summary>
    public TimeSpan ReaderWait { get; init; } = Storage.Repository.BackupRepository.DefaultReaderWait;
    /// <summary>Mirror scrub: each backup re-checks 1/N of the unchanged blocks (docs/repository-format.md); 0 = off.</summary>
    public int ScrubCycle { get; init; } = Storage.Repository.BackupRepository.DefaultScrubCycle;
    /// <summary>Bound on every guest-agent call (the ping before a quiesced snapshot, the freeze, each thaw); config agent-timeout.</summary>
    public TimeSpan AgentTimeout { get; init; } = GuestAgent.AgentGuard.DefaultTimeout;
    /// <summary>How long a run keeps trying to thaw a guest after a quiesce failed before it leaves it to `recover`.</summary>
    public TimeSpan ThawBudget { get; init; } = GuestAgent.AgentGuard.DefaultThawBudget;
    /// <summary>
    /// Create and rotate libvirt checkpoints and read only the changed blocks where they allow (changed-block tracking,
    /// docs/workflow.md). On by default; the daemon configuration's `changed-blocks: off` turns it off.
    /// </summary>
    public bool ChangedBlockTracking { get; init; } = true;
}

public sealed record SkippedDisk(string Target, string Reason);

/// <summary>One file of a disk's frozen chain as stored: fileKey is &lt;target&gt;.&lt;depth&gt; (0 = the image right below the overlay).</summary>
public sealed record CopiedFile(string FileKey, string SourcePath, string Format, long VirtualSize, long BytesRead, long BytesWritten, string Digest, TimeSpan Elapsed)
{
    /// <summary>See <see cref="StoredFile.ScrubbedBlocks"/>.</summary>
    public long ScrubbedBlocks { get; init; }
    public int HealedBlocks { get; init; }
    /// <summary>See <see cref="StoredFile.Healing"/>.</summary>
    public string? Healing { get; init; }

    /// <summary>See <see cref="StoredFile.ReadMode"/>.</summary>
    public string ReadMode { get; init; } = Storage.ChangedBlocks.ReadModes.Full;
    public string? FullReadReason { get; init; }
    public long CleanButChanged { get; init; }
}

public sealed record DiskResult(
    string Target,
    string BasePath,
    string? OverlayPath,
    IReadOnlyList<CopiedFile> Files,
    TimeSpan CopyTime,
    TimeSpan? CommitTime,
    bool BackOnBase,
    string? Problem)
{
    public long BytesRead => Files.Sum(f => f.BytesRead);
    public long BytesWritten => Files.Sum(f => f.BytesWritten);

    /// <summary>How the disk's depth-0 file was read (<see cref="Storage.ChangedBlocks.ReadModes"/>); its backing files are always read in full.</summary>
    public string ReadMode => Files.Count > 0 ? Files[0].ReadMode : Storage.ChangedBlocks.ReadModes.Full;

    /// <summary>Why the disk was read in full (null for an incremental read).</summary>
    public string? FullReadReason { get; init; }

    /// <summary>Safety net: blocks the bitmap called clean that changed (must be 0).</summary>
    public long CleanButChanged => Files.Sum(f => f.CleanButChanged);
}

public sealed record BackupResult(
    string RunId,
    string Domain,
    string DomainUuid,
    RunOutcome Outcome,
    Consistency? Consistency,
    DateTimeOffset StartedAt,
    TimeSpan Duration,
    TimeSpan? OverlayLifetime,
    TimeSpan CopyTime,
    TimeSpan? CommitTime,
    string? RestorePointId,
    IReadOnlyList<DiskResult> Disks,
    IReadOnlyList<SkippedDisk> Skipped,
    string? Error)
{
    /// <summary>How the snapshot was quiesced (null: the domain was shut off).</summary>
    public QuiesceReport? Quiesce { get; init; }

    /// <summary>The checkpoint kept for the next backup (NEW, or the previous one carried over); null: the next backup reads in full.</summary>
    public string? Checkpoint { get; init; }

    /// <summary>A safety-net read found blocks the bitmap called clean that changed: the point fails verification (logged critical).</summary>
    public bool SafetyNetFailed => Disks.Any(d => d.CleanButChanged > 0);

    /// <summary>The committed point as the repository returned it (null unless the copy committed); not part of the JSON.</summary>
    [System.Text.Json.Serialization.JsonIgnore]
    public Storage.Repository.RestorePointInfo? RestorePoint { get; init; }
}

/// <summary>
/// The quiesce of a run, for the journal, the catalog (runs.detail, an event when it did not go to plan) and
/// the command output. Outcome: quiesced, crash-consistent, failed. Thaw: after a failed quiesce, what
/// guest-fsfreeze-status said in the end (not-frozen, thawed, unconfirmed).
/// </summary>
public sealed record QuiesceReport(string Requested, string Outcome, string? Reason = null, string? Thaw = null, double? AgentWaitSeconds = null)
{
    /// <summary>Anything an operator should hear about: a fallback, a failure, a thaw.</summary>
    public bool Noteworthy => Reason is not null || Thaw is not null;

    /// <summary>False when the run failed or was refused for it, or the guest may still be frozen.</summary>
    public bool Ok => Outcome is not ("failed" or "refused") && Thaw?.StartsWith("unconfirmed", StringComparison.Ordinal) != true;

    public string ToJson() => System.Text.Json.JsonSerializer.Serialize(this, QuiesceJsonContext.Default.QuiesceReport);
}

/// <summary>The quiesce report as the journal and the catalog store it (kebab-case names, nulls left out); source-generated, as the journal.</summary>
[System.Text.Json.Serialization.JsonSourceGenerationOptions(PropertyNamingPolicy = System.Text.Json.Serialization.JsonKnownNamingPolicy.KebabCaseLower,
    DefaultIgnoreCondition = System.Text.Json.Serialization.JsonIgnoreCondition.WhenWritingNull)]
[System.Text.Json.Serialization.JsonSerializable(typeof(QuiesceReport))]
internal sealed partial class QuiesceJsonContext : System.Text.Json.Serialization.JsonSerializerContext;

/// <summary>Progress of the copy, for a progress bar.</summary>
public sealed record BackupProgress(string FileKey, long FileBytesDone, long TotalBytesDone, long TotalBytes);

/// <summary>Why a request was refused before anything touched the domain.</summary>
public enum RefusalKind
{
    DomainNotFound,
    BadRequest,
    TargetUnavailable,
    Busy,
    NeedsRecovery,
    QuiesceUnavailable,
    InsufficientSpace,
}

/// <summary>Preflight said no: the domain was not touched (no snapshot, no journal entry).</summary>
public sealed class BackupRefusedException : Exception
{
    public BackupRefusedException(RefusalKind kind, string message) : base(message) => Kind = kind;
    public BackupRefusedException() { }
    public BackupRefusedException(string message) : base(message) { }
    public BackupRefusedException(string message, Exception inner) : base(message, inner) { }
    public RefusalKind Kind { get; }
}
