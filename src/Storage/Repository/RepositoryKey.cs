using System.Security.Cryptography;
using Backupd.Storage.Delta;
using Microsoft.Win32.SafeHandles;

namespace Backupd.Storage.Repository;

/// <summary>
/// Where a repository's key is (docs/repository-format.md, "Threat model"): beside the data as <c>REPO/key</c>, or,
/// when repository.json says <c>"keyFile": "external"</c>, on the host as <c>KEYDIR/&lt;repositoryId&gt;.key</c>, so
/// whoever can write the repository (a NAS, an NFS export, a USB disk) but not read the host's key directory cannot
/// forge its documents. KEYDIR is /etc/backupd/keys unless <c>BACKUPD_KEY_DIRECTORY</c> names another.
/// </summary>
internal static class RepositoryKey
{
    public const string Internal = "key";
    public const string External = "external";
    public const string DirectoryVariable = "BACKUPD_KEY_DIRECTORY";
    public const string DefaultDirectory = "/etc/backupd/keys";
    private const uint OwnerOnly = 0x180; // 0600
    private const UnixFileMode GroupOrOther = UnixFileMode.GroupRead | UnixFileMode.GroupWrite | UnixFileMode.GroupExecute |
        UnixFileMode.OtherRead | UnixFileMode.OtherWrite | UnixFileMode.OtherExecute;

    public static string KeyDirectory =>
        Path.GetFullPath(Environment.GetEnvironmentVariable(DirectoryVariable) is { Length: > 0 } d ? d : DefaultDirectory);

    public static string ExternalPath(string repositoryId) => Path.Combine(KeyDirectory, repositoryId + ".key");

    public static string NewRepositoryId() => Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(16));

    /// <summary>The key a repository.json names; a missing, odd-sized or (external) group/other-accessible key is refused.</summary>
    public static byte[] Read(RepositoryLayout layout, RepositoryDirectory beneath, RepositoryDocument doc)
    {
        if (doc.KeyFile != External)
        {
            var key = ReadFrom(beneath, layout.KeyFile, checkMode: false);
            // A key for this id on the host: either a move-out interrupted before repository.json switched (same key),
            // or repository.json switched back in place to a planted key, with documents MAC'd under it: refused.
            if (doc.RepositoryId is not null && Names.IsValid(NameKind.GroupId, doc.RepositoryId) && File.Exists(ExternalPath(doc.RepositoryId)))
            {
                using var hostKeys = new RepositoryDirectory(KeyDirectory);
                if (!CryptographicOperations.FixedTimeEquals(ReadFrom(hostKeys, ExternalPath(doc.RepositoryId), checkMode: true), key))
                {
                    throw new RepositoryCorruptException($"{layout.Document}: names the key {layout.KeyFile}, but this repository's key is {ExternalPath(doc.RepositoryId)} and differs; refused (repository.json and the key were replaced outside backupd)");
                }
            }
            return key;
        }
        if (doc.RepositoryId is null)
        {
            throw new RepositoryCorruptException($"{layout.Document}: keyFile is '{External}' but the document has no repositoryId naming the key");
        }
        Names.Require(NameKind.GroupId, doc.RepositoryId, layout.Document, "repositoryId");
        var path = ExternalPath(doc.RepositoryId);
        RepositoryDirectory keys;
        try
        {
            keys = new RepositoryDirectory(KeyDirectory);
        }
        catch (DirectoryNotFoundException)
        {
            throw Missing(path);
        }
        using (keys)
        {
            return ReadFrom(keys, path, checkMode: true);
        }
    }

    /// <summary>
    /// Writes <paramref name="key"/> as the external key of <paramref name="repositoryId"/> (0600, durably); an existing
    /// file is kept if it holds the same key (a move-out interrupted after this step), refused otherwise.
    /// </summary>
    public static string WriteExternal(string repositoryId, byte[] key)
    {
        var path = ExternalPath(repositoryId);
#pragma warning disable CA1416 // backupd runs on Linux only (openat2, flock, libvirt)
        Directory.CreateDirectory(KeyDirectory, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
#pragma warning restore CA1416
        using var keys = new RepositoryDirectory(KeyDirectory);
        if (keys.FileExists(path))
        {
            if (!CryptographicOperations.FixedTimeEquals(ReadFrom(keys, path, checkMode: true), key))
            {
                throw new RepositoryException($"{path} already exists and holds another key; refusing to replace it (move it away if it belongs to no repository)");
            }
            return path;
        }
        keys.WriteFile(path, key, OwnerOnly);
        return path;
    }

    /// <summary>A 32-byte key file on the host (the offsite key), with the same checks as an external repository key.</summary>
    internal static byte[] ReadHostFile(string path)
    {
        RepositoryDirectory parent;
        try
        {
            parent = new RepositoryDirectory(Path.GetDirectoryName(path)!);
        }
        catch (DirectoryNotFoundException)
        {
            throw Missing(path);
        }
        using (parent)
        {
            return ReadFrom(parent, path, checkMode: true);
        }
    }

    /// <summary>Writes a new 32-byte key file (0600, durably) in an existing directory; an existing file is refused, never replaced.</summary>
    internal static void WriteNewHostFile(string path, byte[] key)
    {
        using var parent = new RepositoryDirectory(Path.GetDirectoryName(path)!);
        if (parent.Kind(path) != EntryKind.Missing)
        {
            throw new RepositoryException($"{path} already exists; refusing to replace a key (move it away first if it belongs to nothing)");
        }
        parent.WriteFile(path, key, OwnerOnly);
    }

    private static byte[] ReadFrom(RepositoryDirectory directory, string path, bool checkMode)
    {
        SafeFileHandle handle;
        try
        {
            handle = directory.OpenFile(path, FileMode.Open, FileAccess.Read);
        }
        catch (FileNotFoundException)
        {
            throw Missing(path);
        }
        using (handle)
        {
#pragma warning disable CA1416 // Linux only, as above
            var mode = File.GetUnixFileMode(handle);
#pragma warning restore CA1416
            if (checkMode && (mode & GroupOrOther) != 0)
            {
                throw new RepositoryException($"{path}: mode {Convert.ToString((int)mode, 8)} lets others than its owner reach the repository key; refused (chmod 600 {path})");
            }
            var key = new byte[BlockHasher.KeyLength];
            var length = RandomAccess.GetLength(handle);
            if (length != BlockHasher.KeyLength || RandomAccess.Read(handle, key, 0) != key.Length)
            {
                throw new RepositoryCorruptException($"{path}: {length} bytes, expected {BlockHasher.KeyLength}");
            }
            return key;
        }
    }

    private static RepositoryException Missing(string path) =>
        new($"the repository key {path} is missing: without the key, the repository's documents cannot be authenticated: restore the key from your copy");
}
