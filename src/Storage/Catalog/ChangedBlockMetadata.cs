using System.Text.Json;
using System.Text.Json.Serialization;

namespace Backupd.Storage.Catalog;

/// <summary>
/// The point metadata "changed-blocks" (docs/repository-format.md): which libvirt checkpoint's bitmap records every guest write
/// since this point's files were read, and how each disk was read. The next backup trusts a bitmap only through this record of
/// the group's newest point, so it lives in the repository (`catalog rebuild` keeps it) and in the catalog.
/// </summary>
public sealed record ChangedBlockMetadata(string? Checkpoint, IReadOnlyList<ChangedBlockDisk> Disks)
{
    public const string MetadataName = "changed-blocks";

    private static readonly JsonSerializerOptions Json = new()
    {
        PropertyNamingPolicy = JsonNamingPolicy.KebabCaseLower,
        DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull,
    };

    public string ToJson() => JsonSerializer.Serialize(this, Json);

    /// <summary>Null when the point has no such record (older points, file backups) or it is unreadable: then nothing is trusted.</summary>
    public static ChangedBlockMetadata? Of(IReadOnlyDictionary<string, string> metadata)
    {
        if (!metadata.TryGetValue(MetadataName, out var text)) return null;
        try { return JsonSerializer.Deserialize<ChangedBlockMetadata>(text, Json); }
        catch (JsonException) { return null; }
    }

    public ChangedBlockDisk? Disk(string target) => Disks.FirstOrDefault(d => d.Target == target);
}

/// <summary>
/// One disk of a point. <see cref="BasePath"/> and <see cref="ChainLength"/> are the depth-0 file and chain at that moment (a plan
/// is only used on the same file and chain); <see cref="Bitmap"/>: the checkpoint tracks this disk. <see cref="Mode"/>: incremental,
/// full or safety-net; <see cref="SinceFull"/>: backups of the disk since its last full or safety-net read (for full-every).
/// </summary>
public sealed record ChangedBlockDisk(
    string Target, string BasePath, int ChainLength, bool Bitmap, string Mode, string? FullReadReason, long BytesRead, long CleanButChanged, int SinceFull)
{
    /// <summary>When the disk was last read in full (this run, or carried over by incremental ones), for full-every in days; null in older records.</summary>
    public DateTimeOffset? LastFullRead { get; init; }
}
