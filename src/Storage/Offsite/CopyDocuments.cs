using System.Security.Cryptography;
using System.Text.Json;
using System.Text.Json.Serialization;
using Backupd.Storage.Delta;
using Backupd.Storage.Repository;

namespace Backupd.Storage.Offsite;

/// <summary>
/// offsite.json, the one plaintext document of a copy repository: what it is, and a key check (a known text sealed
/// under the data key) so a wrong key is told at once, with both fingerprints, instead of as damage later.
/// </summary>
/// <remarks>
/// <c>chunkSize</c> (absent in repositories made before it existed: there a file's chunks are its local blocks) is the
/// smallest chunk of every copy into the repository; kept for its life, as ids only deduplicate between equal cuts.
/// </remarks>
internal sealed record OffsiteConfig(string Format, int Version, DateTimeOffset CreatedAt, string KeyFingerprint, string KeyCheck, int? ChunkSize = null)
{
    public const string FormatName = "backupd-offsite";
    public const int CurrentVersion = 1;
    private static readonly byte[] CheckText = "backupd-offsite key check v1"u8.ToArray();
    private static readonly byte[] CheckContext = "offsite.json"u8.ToArray();

    public static OffsiteConfig Create(OffsiteKey key, int chunkSize)
    {
        if (!BlockHasher.IsValidBlockSize(chunkSize))
        {
            throw new ArgumentOutOfRangeException(nameof(chunkSize), chunkSize, "a chunk size is a power of two from 4 KiB to 4 MiB");
        }
        var sealedCheck = new byte[12 + 16 + CheckText.Length];
        RandomNumberGenerator.Fill(sealedCheck.AsSpan(0, 12));
        using var gcm = new AesGcm(key.DataKey, 16);
        gcm.Encrypt(sealedCheck.AsSpan(0, 12), CheckText, sealedCheck.AsSpan(28), sealedCheck.AsSpan(12, 16), CheckContext);
        return new OffsiteConfig(FormatName, CurrentVersion, DateTimeOffset.UtcNow, key.Fingerprint, Convert.ToBase64String(sealedCheck), chunkSize);
    }

    /// <summary>Refuses another format or version, and a key that does not open the key check.</summary>
    public void Check(OffsiteKey key, string where)
    {
        if (Format != FormatName || Version != CurrentVersion)
        {
            throw new RepositoryException($"{where}: format '{Format}' version {Version} is not supported (expected '{FormatName}' version {CurrentVersion})");
        }
        if (ChunkSize is { } size && !BlockHasher.IsValidBlockSize(size))
        {
            throw new RepositoryException($"{where}: chunkSize {size} is not a power of two from 4096 to {BlockHasher.MaxBlockSize}");
        }
        byte[] check;
        try
        {
            check = Convert.FromBase64String(KeyCheck ?? "");
        }
        catch (FormatException)
        {
            check = [];
        }
        var opened = check.Length == 28 + CheckText.Length;
        if (opened)
        {
            try
            {
                using var gcm = new AesGcm(key.DataKey, 16);
                gcm.Decrypt(check.AsSpan(0, 12), check.AsSpan(28), check.AsSpan(12, 16), new byte[CheckText.Length], CheckContext);
            }
            catch (AuthenticationTagMismatchException)
            {
                opened = false;
            }
        }
        if (!opened)
        {
            throw new WrongKeyException($"{where}: the key given (fingerprint {key.Fingerprint}) does not open this copy repository, which was made with the key of fingerprint {KeyFingerprint}; give that key (--key FILE, or the '{OffsiteKey.CredentialName}' credential)");
        }
    }
}

/// <summary>The key does not open the copy repository (nothing was read or changed).</summary>
public sealed class WrongKeyException(string message) : RepositoryException(message);

/// <summary>
/// One file of a copied point, as its index records it (the chunk ids follow the header in the index).
/// <see cref="BlockSize"/> is the size of the file's chunks (a multiple of its local block size; the name is the format's since version 1).
/// </summary>
public sealed record CopyIndexFile(
    string FileKey, string VersionId, string SourcePath, string Format, string? BackingFile, long VirtualSize,
    long FileSize, int BlockSize, long ChunkCount, string Digest, string LocalDigest);

/// <summary>The header of a point's index: the point as the local repository had it, and its files.</summary>
public sealed record CopyIndexHeader(
    string Format, int Version, string PointId, string GroupId, string GroupName, long Sequence, DateTimeOffset CreatedAt,
    DateTimeOffset CopiedAt, Dictionary<string, string> Metadata, List<CopyIndexFile> Files)
{
    public const string FormatName = "backupd-offsite-index";
    public const int CurrentVersion = 1;

    /// <summary>Names in an authenticated index are still checked: they become paths when restored.</summary>
    internal void Check(string where, string name)
    {
        if (Format != FormatName || Version != CurrentVersion)
        {
            throw new RepositoryCorruptException($"{where}: format '{Format}' version {Version} is not supported (expected '{FormatName}' version {CurrentVersion})");
        }
        Names.Require(NameKind.PointId, PointId, where, "pointId");
        Names.Require(NameKind.GroupId, GroupId, where, "groupId");
        if (PointId != name)
        {
            throw new RepositoryCorruptException($"{where}: holds point {PointId}, but is stored as {name}; refused");
        }
        if (Files is null || Metadata is null)
        {
            throw new RepositoryCorruptException($"{where}: field '{(Files is null ? "files" : "metadata")}' is missing");
        }
        for (var i = 0; i < Files.Count; i++)
        {
            var f = Files[i];
            Names.Require(NameKind.FileKey, f?.FileKey, where, $"files[{i}].fileKey");
            if (!BlockHasher.IsValidBlockSize(f!.BlockSize) || f.FileSize < 0 || f.ChunkCount != (f.FileSize + f.BlockSize - 1) / f.BlockSize)
            {
                throw new RepositoryCorruptException($"{where}: files[{i}] ('{f.FileKey}'): {f.ChunkCount} chunks of {f.BlockSize} bytes do not make {f.FileSize} bytes");
            }
        }
    }
}

[JsonSourceGenerationOptions(JsonSerializerDefaults.Web, DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull)]
[JsonSerializable(typeof(OffsiteConfig))]
[JsonSerializable(typeof(CopyIndexHeader))]
internal sealed partial class OffsiteJsonContext : JsonSerializerContext
{
}
