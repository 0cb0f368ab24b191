using System.Text.Json;
using System.Text.Json.Serialization;
using System.Text.Json.Serialization.Metadata;

namespace Backupd.Storage.Repository;

/// <summary>The JSON documents of the repository (docs/repository-format.md). Field names are part of the format.</summary>
internal static class Json
{
    public static byte[] Serialize<T>(T value) => JsonSerializer.SerializeToUtf8Bytes(value, Info<T>());

    /// <summary>The document <paramref name="content"/> read from <paramref name="path"/> (named in errors).</summary>
    public static T Parse<T>(string path, byte[] content)
    {
        try
        {
            return JsonSerializer.Deserialize(content, Info<T>())
                ?? throw new RepositoryCorruptException($"{path}: empty document");
        }
        catch (JsonException e)
        {
            throw new RepositoryCorruptException($"{path}: not a valid {typeof(T).Name} document: {e.Message}", e);
        }
    }

    // Source-generated metadata: reflection-based serialization JIT-compiles ~150 methods per process
    // (~0.1 CPU-s on every `backupd backup`, measured with DOTNET_PerfMapEnabled).
    private static JsonTypeInfo<T> Info<T>() =>
        (RepositoryJsonContext.Default.GetTypeInfo(typeof(T)) ?? Offsite.OffsiteJsonContext.Default.GetTypeInfo(typeof(T))) as JsonTypeInfo<T>
        ?? throw new InvalidOperationException($"{typeof(T).Name} is not a repository document");
}

[JsonSourceGenerationOptions(JsonSerializerDefaults.Web, WriteIndented = true, DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull)]
[JsonSerializable(typeof(RepositoryDocument))]
[JsonSerializable(typeof(GroupDocument))]
[JsonSerializable(typeof(PinDocument))]
[JsonSerializable(typeof(PointDocument))]
[JsonSerializable(typeof(JournalDocument))]
internal sealed partial class RepositoryJsonContext : JsonSerializerContext
{
}

internal sealed record RepositoryDocument(string Format, int Version, DateTimeOffset CreatedAt, string KeyFile, string HashAlgorithm, int DefaultBlockSize)
    : IRepositoryDocument<RepositoryDocument>
{
    public const string FormatName = "backupd-repository";

    /// <summary>2: every document carries a MAC. Version 1 (none) is upgraded at the first open.</summary>
    public const int CurrentVersion = 2;
    public const int UnauthenticatedVersion = 1;
    public const string BlockHashAlgorithm = "aes256-gmac-128";

    public string? Mac { get; init; }

    /// <summary>Random, names the external key (KEYDIR/ID.key); absent in repositories created before it existed until their key moves out.</summary>
    public string? RepositoryId { get; init; }

    public RepositoryDocument WithMac(string? mac) => this with { Mac = mac };

    public void CheckNames(string path)
    {
        if (RepositoryId is not null)
        {
            Names.Require(NameKind.GroupId, RepositoryId, path, "repositoryId");
        }
    }
}

internal sealed record GroupDocument(string GroupId, string GroupName) : IRepositoryDocument<GroupDocument>
{
    public string? Mac { get; init; }

    public GroupDocument WithMac(string? mac) => this with { Mac = mac };

    public void CheckNames(string path) => Names.Require(NameKind.GroupId, GroupId, path, "groupId");
}

internal sealed record PointFileDocument(
    string FileKey, string VersionId, long VersionSequence, string SourcePath, string Format, string? BackingFile,
    long VirtualSize, long FileSize, string Digest, int BlockSize, long BytesRead, long BytesWritten, long BlocksChanged, double ElapsedSeconds)
{
    public long MirrorBytesWritten { get; init; }
    public long UndoBytesWritten { get; init; }

    /// <summary>
    /// The undo record's size had it been stored uncompressed; null (absent) without an undo record. Nullable so that a
    /// point written before this field existed serializes to the same bytes, and its MAC still matches.
    /// </summary>
    public long? UndoBytesUncompressed { get; init; }
    /// <summary>Written only when the backup was offered a changed-block plan (ChangedBlocks.ReadModes); absent means full.</summary>
    public string? ReadMode { get; init; }
    public string? FullReadReason { get; init; }
    public long? CleanButChanged { get; init; }

    public FileVersionInfo ToInfo() =>
        new(FileKey, SourcePath, Format, BackingFile, VirtualSize, FileSize, Digest, BytesRead, BytesWritten, BlocksChanged, TimeSpan.FromSeconds(ElapsedSeconds))
        {
            VersionId = VersionId,
            BlockSize = BlockSize,
            MirrorBytesWritten = MirrorBytesWritten,
            UndoBytesWritten = UndoBytesWritten,
            UndoBytesUncompressed = UndoBytesUncompressed ?? 0,
            ReadMode = ReadMode ?? ChangedBlocks.ReadModes.Full,
            FullReadReason = FullReadReason,
            CleanButChanged = CleanButChanged ?? 0,
        };
}

internal sealed record PointDocument(
    int Version, string PointId, string GroupId, string GroupName, long Sequence, DateTimeOffset CreatedAt,
    List<PointFileDocument> Files, Dictionary<string, string> Metadata) : IRepositoryDocument<PointDocument>
{
    public string? Mac { get; init; }

    public PointDocument WithMac(string? mac) => this with { Mac = mac };

    public void CheckNames(string path)
    {
        Names.Require(NameKind.PointId, PointId, path, "pointId");
        Names.Require(NameKind.GroupId, GroupId, path, "groupId");
        if (Files is null || Metadata is null)
        {
            throw new RepositoryCorruptException($"{path}: field '{(Files is null ? "files" : "metadata")}' is missing; the document is refused (nothing was changed)");
        }
        for (var i = 0; i < Files.Count; i++)
        {
            Names.Require(NameKind.FileKey, Files[i]?.FileKey, path, $"files[{i}].fileKey");
            Names.Require(NameKind.PointId, Files[i].VersionId, path, $"files[{i}].versionId");
        }
        foreach (var name in Metadata.Keys)
        {
            Names.Require(NameKind.MetadataName, name, path, $"metadata key '{name}'");
        }
    }

    public RestorePointInfo ToInfo() =>
        new(PointId, GroupId, GroupName, CreatedAt, Files.Select(f => f.ToInfo()).ToList(), new Dictionary<string, string>(Metadata))
        {
            Sequence = Sequence,
        };
}

/// <summary>One file an update touches, recorded before its mirror changes.</summary>
internal sealed record JournalFile(string FileKey, bool HadMirror, string? UndoName);

/// <summary>One undo-record change of a deletion: remove undo(Remove), after merging it into undo(MergeInto) when given.</summary>
internal sealed record JournalMerge(string FileKey, string Remove, string? MergeInto);

/// <summary>
/// One mirror of a deletion of its newest version: apply undo(UndoName) to the mirror, which then holds the
/// previous version (whose digest must be Digest), re-sign it, remove the record. Idempotent until the record is gone.
/// </summary>
internal sealed record JournalRollback(string FileKey, string UndoName, string Digest, int BlockSize);

/// <summary>The in-progress update of a group; present only while an update runs (or after a crash).</summary>
internal sealed record JournalDocument(string Operation, string PointId, List<JournalFile> Files, List<JournalMerge> Merges, List<JournalRollback>? Rollbacks = null)
    : IRepositoryDocument<JournalDocument>
{
    public const string Backup = "backup";
    public const string Delete = "delete";

    public string? Mac { get; init; }

    public JournalDocument WithMac(string? mac) => this with { Mac = mac };

    public void CheckNames(string path)
    {
        Names.Require(NameKind.PointId, PointId, path, "pointId");
        if (Files is null || Merges is null)
        {
            throw new RepositoryCorruptException($"{path}: field '{(Files is null ? "files" : "merges")}' is missing; the document is refused (nothing was changed)");
        }
        for (var i = 0; i < Files.Count; i++)
        {
            Names.Require(NameKind.FileKey, Files[i]?.FileKey, path, $"files[{i}].fileKey");
            if (Files[i].UndoName is not null)
            {
                Names.Require(NameKind.PointId, Files[i].UndoName, path, $"files[{i}].undoName");
            }
        }
        for (var i = 0; i < Merges.Count; i++)
        {
            Names.Require(NameKind.FileKey, Merges[i]?.FileKey, path, $"merges[{i}].fileKey");
            Names.Require(NameKind.PointId, Merges[i].Remove, path, $"merges[{i}].remove");
            if (Merges[i].MergeInto is not null)
            {
                Names.Require(NameKind.PointId, Merges[i].MergeInto, path, $"merges[{i}].mergeInto");
            }
        }
        for (var i = 0; i < (Rollbacks?.Count ?? 0); i++)
        {
            Names.Require(NameKind.FileKey, Rollbacks![i]?.FileKey, path, $"rollbacks[{i}].fileKey");
            Names.Require(NameKind.PointId, Rollbacks[i].UndoName, path, $"rollbacks[{i}].undoName");
        }
    }
}
