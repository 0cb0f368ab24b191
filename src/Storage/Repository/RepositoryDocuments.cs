using System.Security.Cryptography;
using System.Text;

namespace Backupd.Storage.Repository;

/// <summary>A JSON document of the repository: authenticated by a MAC, and able to check the names it carries.</summary>
internal interface IRepositoryDocument<TSelf>
    where TSelf : IRepositoryDocument<TSelf>
{
    /// <summary>"hmac-sha256:" + hex; null in the canonical form the MAC is computed over.</summary>
    string? Mac { get; }

    TSelf WithMac(string? mac);

    /// <summary>Throws <see cref="RepositoryCorruptException"/> naming <paramref name="path"/> and the field unless every name is valid.</summary>
    void CheckNames(string path);
}

/// <summary>
/// Reads and writes the repository's JSON documents. Each carries a MAC under a key derived from the repository
/// key: HMAC-SHA256 over "backupd-document-v1\0" + its path below the root + "\0" + the document serialized
/// without its "mac" field (docs/repository-format.md, "Metadata authentication"). A document is refused when its
/// MAC does not match (edited outside backupd, or moved to another name) or a name in it breaks its grammar, so no
/// caller ever sees a forged point, journal or group document, or a name that is a path.
/// </summary>
internal sealed class RepositoryDocuments(RepositoryDirectory beneath, ReadOnlySpan<byte> repositoryKey)
{
    /// <summary>Far above any real document (a domain XML is kilobytes); checked before reading.</summary>
    public const long MaxDocumentBytes = 16 << 20;
    private const string MacPrefix = "hmac-sha256:";
    private readonly byte[] _macKey = DeriveMacKey(repositoryKey);

    /// <summary>Only while a version-1 repository (no MACs yet) is upgraded: documents without a MAC are accepted.</summary>
    public bool AcceptUnsigned { get; set; }

    public T Read<T>(string path)
        where T : IRepositoryDocument<T>
    {
        var doc = Json.Parse<T>(path, beneath.ReadAll(path, MaxDocumentBytes));
        if (doc.Mac is null)
        {
            if (!AcceptUnsigned)
            {
                throw new RepositoryCorruptException($"{path}: has no 'mac' field; every document of a format-{RepositoryDocument.CurrentVersion} repository is authenticated, so it was written outside backupd and is refused");
            }
        }
        else if (!CryptographicOperations.FixedTimeEquals(Encoding.ASCII.GetBytes(doc.Mac), Encoding.ASCII.GetBytes(Compute(path, doc))))
        {
            throw new RepositoryCorruptException($"{path}: its MAC does not match its content: the document was edited or damaged outside backupd (or moved from another name) and is refused; nothing was changed");
        }
        doc.CheckNames(path);
        return doc;
    }

    /// <summary>Publishes <paramref name="doc"/> at <paramref name="path"/> (atomically, durably) with its MAC.</summary>
    public void Write<T>(string path, T doc, uint createMode = 0x1B6)
        where T : IRepositoryDocument<T> =>
        beneath.WriteFile(path, Json.Serialize(doc.WithMac(Compute(path, doc))), createMode);

    private string Compute<T>(string path, T doc)
        where T : IRepositoryDocument<T>
    {
        var relative = path[(beneath.Root.Length + 1)..];
        var canonical = Json.Serialize(doc.WithMac(null));
        using var hmac = IncrementalHash.CreateHMAC(HashAlgorithmName.SHA256, _macKey);
        hmac.AppendData("backupd-document-v1\0"u8);
        hmac.AppendData(Encoding.UTF8.GetBytes(relative + "\0"));
        hmac.AppendData(canonical);
        return MacPrefix + Convert.ToHexStringLower(hmac.GetHashAndReset());
    }

    /// <summary>Its own key, so a MAC never equals anything computed with the block-tag key.</summary>
    private static byte[] DeriveMacKey(ReadOnlySpan<byte> repositoryKey)
    {
        var key = new byte[32];
        HKDF.DeriveKey(HashAlgorithmName.SHA256, repositoryKey, key, salt: [], info: "backupd metadata mac v1"u8);
        return key;
    }
}
