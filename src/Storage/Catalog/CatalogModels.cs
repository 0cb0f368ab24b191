namespace Backupd.Storage.Catalog;

/// <summary>Run states as stored in runs.state.</summary>
public static class RunStates
{
    public const string Running = "running";
    public const string Succeeded = "succeeded";
    public const string Failed = "failed";
    public const string Interrupted = "interrupted";
}

/// <summary>Event kinds as stored in events.kind.</summary>
public static class EventKinds
{
    public const string Verify = "verify";
    public const string Retention = "retention";
    public const string Rebuild = "rebuild";
    public const string Damage = "damage";
    public const string Notify = "notify";
    public const string Checkpoint = "checkpoint";
    public const string Drill = "drill";
    public const string Copy = "copy";
    public const string Chain = "chain";
    /// <summary>A quiesce that fell back, failed or had to thaw the guest (migration 0004).</summary>
    public const string Quiesce = "quiesce";
}

/// <summary>What a run does, as stored in runs.kind (migration 0002): every kind takes the domain lock.</summary>
public static class RunKinds
{
    public const string Backup = "backup";
    public const string Chain = "chain";
    public const string MoveDisk = "move-disk";
    public const string Drill = "drill";
    public const string InstantRestore = "instant-restore";
    public const string Copy = "copy";
}

/// <summary>What starts a run: the domain (by UUID, with its current name), what asked for it and who.</summary>
public sealed record RunStart(Guid DomainUuid, string DomainName, string Trigger, string RequestedBy, string? PolicyName = null, string Kind = RunKinds.Backup);

/// <summary>Counters and timings of a finished (or failed) run.</summary>
public sealed record RunStats(
    long BytesRead = 0,
    long BytesWritten = 0,
    TimeSpan? CopyTime = null,
    TimeSpan? OverlayLifetime = null,
    TimeSpan? CommitTime = null,
    string? Consistency = null);

/// <summary>A restore point as the catalog records it: one repository point of one domain.</summary>
public sealed record RestorePointRecord(
    string PointId,
    Guid DomainUuid,
    string DomainName,
    string Repository,
    DateTimeOffset CreatedAt,
    string? DomainXml,
    string? Consistency,
    IReadOnlyList<RestorePointFileRecord> Files);

/// <summary>One chain file of one disk in a restore point.</summary>
public sealed record RestorePointFileRecord(
    string FileKey,
    string Disk,
    int Depth,
    string SourcePath,
    string Format,
    string? BackingFile,
    long VirtualSize,
    long FileSize,
    string Digest,
    long BytesRead,
    long BytesWritten)
{
    /// <summary>Changed-block tracking (migration 0003): ChangedBlocks.ReadModes; null when the repository did not record one (a file backup).</summary>
    public string? ReadMode { get; init; }
    public string? FullReadReason { get; init; }
    public long CleanButChanged { get; init; }

    /// <summary>Splits a repository file key `&lt;disk&gt;.&lt;depth&gt;` (vda.0 = top of vda's chain). Other keys are one-file "disks" at depth 0.</summary>
    public static (string Disk, int Depth) ParseKey(string fileKey)
    {
        var dot = fileKey.LastIndexOf('.');
        if (dot > 0 && int.TryParse(fileKey.AsSpan(dot + 1), System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out var depth))
            return (fileKey[..dot], depth);
        return (fileKey, 0);
    }
}

/// <summary>A domain known to the catalog.</summary>
public sealed class DomainRow
{
    public Guid Uuid { get; init; }
    public string Name { get; init; } = "";
    public string? Host { get; init; }
    public DateTime FirstSeen { get; init; }
    public DateTime LastSeen { get; init; }
}

/// <summary>A line of `backupd list`.</summary>
public sealed class RestorePointSummary
{
    public string Id { get; init; } = "";
    public Guid DomainUuid { get; init; }
    public string DomainName { get; init; } = "";
    public DateTime CreatedAt { get; init; }
    public string Repository { get; init; } = "";
    public long? RunId { get; init; }
    public string? Consistency { get; init; }
    public int Disks { get; init; }
    public int Files { get; init; }
    public long TotalFileSize { get; init; }
    public long TotalVirtualSize { get; init; }

    /// <summary>The copy targets holding this point (point_copies), by name.</summary>
    public string[] Copies { get; init; } = [];

    /// <summary>
    /// How the top file of each disk was read (changed-block tracking, migration 0003): incremental, full or safety-net when every
    /// disk was read alike, <see cref="MixedReadMode"/> when disks differ; null when none was recorded (older points, file backups).
    /// </summary>
    public string? ReadMode { get; init; }

    public const string MixedReadMode = "mixed";
}

/// <summary>A chain file as `backupd show` prints it.</summary>
public sealed class RestorePointFileRow
{
    public string FileKey { get; init; } = "";
    public string Disk { get; init; } = "";
    public int Depth { get; init; }
    public string SourcePath { get; init; } = "";
    public string Format { get; init; } = "";
    public string? BackingFile { get; init; }
    public long VirtualSize { get; init; }
    public long FileSize { get; init; }
    public string Digest { get; init; } = "";
    public long BytesRead { get; init; }
    public long BytesWritten { get; init; }
    /// <summary>incremental, full or safety-net (migration 0003); null for points recorded before it.</summary>
    public string? ReadMode { get; init; }
    public string? FullReadReason { get; init; }
    public long CleanButChanged { get; init; }
}

/// <summary>One run.</summary>
public sealed class RunRow
{
    public long Id { get; init; }
    public Guid DomainUuid { get; init; }
    public string DomainName { get; init; } = "";
    public string? PolicyName { get; init; }
    public string Trigger { get; init; } = "";
    public string RequestedBy { get; init; } = "";
    public string Host { get; init; } = "";
    public int Pid { get; init; }
    public string ProcessStart { get; init; } = "";
    public DateTime StartedAt { get; init; }
    public DateTime? FinishedAt { get; init; }
    public string State { get; init; } = "";
    public string Step { get; init; } = "";
    public long ProgressBytes { get; init; }
    public long? ProgressTotal { get; init; }
    public long BytesRead { get; init; }
    public long BytesWritten { get; init; }
    public TimeSpan? CopyTime { get; init; }
    public TimeSpan? OverlayLifetime { get; init; }
    public TimeSpan? CommitTime { get; init; }
    public string? Consistency { get; init; }
    public string? Error { get; init; }
    public string? RestorePointId { get; init; }
    /// <summary>backup, chain, move-disk, drill, instant-restore, copy (RunKinds).</summary>
    public string Kind { get; init; } = RunKinds.Backup;
    /// <summary>Drills and instant restores: the point they restored.</summary>
    public string? PointId { get; init; }
    /// <summary>Drills: start of the restore to the guest agent answering (or the check passing).</summary>
    public TimeSpan? Rto { get; init; }

    /// <summary>Progress in percent, null when the total is not known yet.</summary>
    public double? Percent => ProgressTotal is > 0 ? Math.Min(100.0, 100.0 * ProgressBytes / ProgressTotal.Value) : null;
}

/// <summary>A verify, retention or rebuild event.</summary>
public sealed class EventRow
{
    public long Id { get; init; }
    public string Kind { get; init; } = "";
    public DateTime At { get; init; }
    public Guid? DomainUuid { get; init; }
    public string? PointId { get; init; }
    public string? Host { get; init; }
    public bool Ok { get; init; }
    public string Detail { get; init; } = "";
}

/// <summary>`backupd show`: a restore point with its files, its run and its last verification.</summary>
public sealed record RestorePointDetail(
    RestorePointSummary Point,
    string? DomainXml,
    IReadOnlyList<RestorePointFileRow> Files,
    RunRow? Run,
    EventRow? LastVerify,
    IReadOnlyList<PointCopyRow>? Copies = null);

/// <summary>`backupd status`: runs in progress and the newest finished run per domain.</summary>
public sealed record CatalogStatus(IReadOnlyList<RunRow> Running, IReadOnlyList<RunRow> LastPerDomain);
