using System.Text.Json;
using System.Text.Json.Serialization;

namespace Backupd.Storage.Repository;

/// <summary>
/// <c>files/KEY/damage.json</c>: the mirror blocks <c>verify</c> found not matching the signature, so that the next
/// backup re-checks (and heals) exactly those besides its rotating sample. A hint, never a source of truth: the backup
/// checks every listed block against the signature itself, so a stale, foreign or damaged list costs a few reads at most.
/// </summary>
internal static class DamageList
{
    /// <summary>More bad blocks than this are not listed one by one (the sample heals the rest over a cycle).</summary>
    public const int MaxBlocks = 1 << 20;

    private const long MaxFileBytes = 32L << 20;

    public static string PathOf(RepositoryLayout layout, string groupId, string fileKey) => Path.Combine(layout.File(groupId, fileKey), "damage.json");

    /// <summary>Records the bad blocks of the mirror of <paramref name="versionId"/>, durably (replacing an older list).</summary>
    public static void Write(RepositoryDirectory beneath, RepositoryLayout layout, string groupId, string fileKey, string versionId, int blockSize, IReadOnlyCollection<long> blocks)
    {
        var doc = new DamageDocument(1, versionId, blockSize, DateTimeOffset.UtcNow, [.. blocks.Order().Take(MaxBlocks)]);
        beneath.WriteFile(PathOf(layout, groupId, fileKey), JsonSerializer.SerializeToUtf8Bytes(doc, DamageJsonContext.Default.DamageDocument));
    }

    /// <summary>The listed blocks for a mirror of <paramref name="blockSize"/>; empty when there is no usable list.</summary>
    public static IReadOnlyList<long> Read(RepositoryDirectory beneath, RepositoryLayout layout, string groupId, string fileKey, int blockSize, long blockCount)
    {
        var path = PathOf(layout, groupId, fileKey);
        try
        {
            if (!beneath.FileExists(path))
            {
                return [];
            }
            var doc = JsonSerializer.Deserialize(beneath.ReadAll(path, MaxFileBytes), DamageJsonContext.Default.DamageDocument);
            return doc is { Version: 1, Blocks: not null } && doc.BlockSize == blockSize
                ? doc.Blocks.Where(b => b >= 0 && b < blockCount).Distinct().Order().ToList()
                : [];
        }
        catch (Exception e) when (e is JsonException or IOException or UnauthorizedAccessException or RepositoryCorruptException)
        {
            return []; // damaged or unreadable: the sample still covers every block over a cycle
        }
    }

    /// <summary>After a committed backup re-checked every listed block.</summary>
    public static void Clear(RepositoryDirectory beneath, RepositoryLayout layout, string groupId, string fileKey) =>
        beneath.Delete(PathOf(layout, groupId, fileKey));
}

internal sealed record DamageDocument(int Version, string VersionId, int BlockSize, DateTimeOffset RecordedAt, List<long>? Blocks);

[JsonSourceGenerationOptions(JsonSerializerDefaults.Web, WriteIndented = false)]
[JsonSerializable(typeof(DamageDocument))]
internal sealed partial class DamageJsonContext : JsonSerializerContext
{
}
