namespace Backupd.Storage.Repository;

/// <summary>What the caller knows about a source file. <paramref name="Format"/>: "qcow2" or "raw" (free text, recorded as is).</summary>
public sealed record SourceFileInfo(string SourcePath, string Format, string? BackingFile, long VirtualSize);

/// <summary>
/// One file of a restore point. <see cref="Digest"/> is the repository content digest ("b3k:" + hex, see
/// docs/repository-format.md). BytesRead/BytesWritten/BlocksChanged/Elapsed describe the backup that wrote this
/// version (zero written and zero changed when it was unchanged or carried over).
/// </summary>
public sealed record FileVersionInfo(
    string FileKey, string SourcePath, string Format, string? BackingFile, long VirtualSize, long FileSize,
    string Digest, long BytesRead, long BytesWritten, long BlocksChanged, TimeSpan Elapsed)
{
    /// <summary>The restore point whose backup wrote these bytes (earlier than the point when unchanged since).</summary>
    public string VersionId { get; init; } = "";

    public int BlockSize { get; init; }

    /// <summary>Of <see cref="BytesWritten"/>: new data written into the mirror.</summary>
    public long MirrorBytesWritten { get; init; }

    /// <summary>Of <see cref="BytesWritten"/>: the undo record (old bytes of the changed ranges); the rest is the signature.</summary>
    public long UndoBytesWritten { get; init; }

    /// <summary>What <see cref="UndoBytesWritten"/> would have been with no data entry compressed (the saving is the difference).</summary>
    public long UndoBytesUncompressed { get; init; }

    /// <summary>What the backup's mirror scrub found (null when the file had no mirror yet).</summary>
    public ScrubReport? Scrub { get; init; }

    /// <summary>How the backup read the file: <c>incremental</c> (only a changed-block plan), <c>full</c> or <c>safety-net</c> (see ChangedBlocks.ReadModes).</summary>
    public string ReadMode { get; init; } = ChangedBlocks.ReadModes.Full;

    /// <summary>Why a changed-block plan offered for this file was not used (null when it was, or none was offered).</summary>
    public string? FullReadReason { get; init; }

    /// <summary>Safety-net mode only: blocks the plan called clean whose content had changed. Anything but 0 means the bitmap missed writes.</summary>
    public long CleanButChanged { get; init; }
}

/// <summary>
/// The mirror scrub of one file in one backup (docs/repository-format.md, "Mirror scrub"). <see cref="HealedBlocks"/> were
/// damaged in the mirror and rewritten from the source; <see cref="SupersededBlocks"/> were listed as damaged by verify but
/// changed in the source, so the damaged bytes now sit in the previous version's undo record. <see cref="PointsAffected"/>:
/// the points (oldest first) whose version read a damaged block from the mirror, i.e. could not be restored before
/// (healed blocks: they can now; superseded ones: they still cannot).
/// </summary>
public sealed record ScrubReport(long BlocksChecked, IReadOnlyList<long> HealedBlocks, IReadOnlyList<long> SupersededBlocks, IReadOnlyList<string> PointsAffected)
{
    /// <summary>One line for logs and command output, or null when nothing was found.</summary>
    public string? Describe(string fileKey)
    {
        if (HealedBlocks.Count == 0 && SupersededBlocks.Count == 0)
        {
            return null;
        }
        var points = PointsAffected.Count switch
        {
            0 => "no restore point read them",
            1 => $"restore point {PointsAffected[0]} could not be restored at those blocks",
            _ => $"the {PointsAffected.Count} restore points {PointsAffected[0]} .. {PointsAffected[^1]} could not be restored at those blocks",
        };
        var healed = HealedBlocks.Count > 0 ? $"healed {HealedBlocks.Count} damaged mirror block(s) of '{fileKey}' from the source (first: block {HealedBlocks[0]})" : null;
        var superseded = SupersededBlocks.Count > 0
            ? $"{SupersededBlocks.Count} block(s) of '{fileKey}' that verify found damaged had changed in the source and could not be healed (first: block {SupersededBlocks[0]})"
            : null;
        var state = SupersededBlocks.Count > 0 ? "those points stay damaged there (forget them or restore an older point)" : "they restore again from now on";
        return $"{string.Join("; ", new[] { healed, superseded }.OfType<string>())}; {points} before this backup; {state}";
    }
}

public sealed record RestorePointInfo(
    string PointId, string GroupId, string GroupName, DateTimeOffset CreatedAt,
    IReadOnlyList<FileVersionInfo> Files, IReadOnlyDictionary<string, string> Metadata)
{
    /// <summary>Order of the point within its group (1, 2, ...).</summary>
    public long Sequence { get; init; }
}

/// <summary>Result of <see cref="BackupRepository.VerifyAsync"/>. Problems name the group, point, file and first bad block or range.</summary>
public sealed record VerifyReport(bool Ok, IReadOnlyList<string> Problems)
{
    public int VersionsChecked { get; init; }
    public long BytesChecked { get; init; }
}
