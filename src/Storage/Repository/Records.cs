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
