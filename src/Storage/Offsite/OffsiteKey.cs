using System.Security.Cryptography;
using System.Text;
using Backupd.Storage.Repository;

namespace Backupd.Storage.Offsite;

/// <summary>
/// The key of copy repositories (docs/repository-format.md, "Copy repositories"): 32 random bytes in a 0600 file
/// (`backupd key create`), or a systemd credential. Two keys are derived from it (HKDF-SHA256), one naming chunks
/// (keyed BLAKE3) and one encrypting them (AES-256-GCM), so neither use weakens the other. Without this key nothing in
/// a copy can be read: keep a paper copy (<see cref="ToPaper"/>) away from the machines it protects.
/// </summary>
public sealed class OffsiteKey
{
    public const int Length = 32;

    /// <summary>The systemd credential (LoadCredential=offsite.key:...) a service reads when no --key is given.</summary>
    public const string CredentialName = "offsite.key";

    private OffsiteKey(byte[] master)
    {
        IdKey = HKDF.DeriveKey(HashAlgorithmName.SHA256, master, Length, salt: [], info: "backupd-offsite chunk-id v1"u8.ToArray());
        DataKey = HKDF.DeriveKey(HashAlgorithmName.SHA256, master, Length, salt: [], info: "backupd-offsite data v1"u8.ToArray());
        Fingerprint = Convert.ToHexStringLower(HKDF.DeriveKey(HashAlgorithmName.SHA256, master, 8, salt: [], info: "backupd-offsite fingerprint v1"u8.ToArray()));
        Master = master;
    }

    internal byte[] Master { get; }
    internal byte[] IdKey { get; }
    internal byte[] DataKey { get; }

    /// <summary>A public name of the key (not a secret): printed on paper and in errors, so the right key can be found.</summary>
    public string Fingerprint { get; }

    public static OffsiteKey FromBytes(byte[] master) =>
        master.Length == Length ? new OffsiteKey(master.ToArray()) : throw new ArgumentException($"an offsite key is {Length} bytes, got {master.Length}", nameof(master));

    public static OffsiteKey Generate() => new(RandomNumberGenerator.GetBytes(Length));

    /// <summary>Where the key is when no --key names it: the systemd credential if the service has one, else KEYDIR/offsite.key.</summary>
    public static string DefaultPath =>
        Environment.GetEnvironmentVariable("CREDENTIALS_DIRECTORY") is { Length: > 0 } credentials && File.Exists(Path.Combine(credentials, CredentialName))
            ? Path.Combine(credentials, CredentialName)
            : Path.Combine(RepositoryKey.KeyDirectory, CredentialName);

    /// <summary>Reads a key file; missing, odd-sized or readable by group/others is refused (the same rules as a repository's host key).</summary>
    public static OffsiteKey Load(string path) => new(RepositoryKey.ReadHostFile(Path.GetFullPath(path)));

    /// <summary>Writes a new key file (0600, durably); an existing file is never replaced.</summary>
    public void Save(string path) => RepositoryKey.WriteNewHostFile(Path.GetFullPath(path), Master);

    /// <summary>
    /// The key as text to print and keep offline: 4 lines of 8 bytes in hex, each with a check byte, so a typing
    /// error when the key is entered again (<see cref="FromPaper"/>) is found on the line where it was made.
    /// </summary>
    public string ToPaper()
    {
        var text = new StringBuilder();
        text.AppendLine("backupd offsite key: whoever holds it reads every copy made with it; without it no copy can be read");
        text.AppendLine($"fingerprint {Fingerprint}");
        for (var line = 0; line < 4; line++)
        {
            var bytes = Master.AsSpan(line * 8, 8);
            var hex = Convert.ToHexStringLower(bytes);
            text.AppendLine($"{line + 1}: {hex[..4]} {hex[4..8]} {hex[8..12]} {hex[12..]}  {Check(line, bytes):x2}");
        }
        return text.ToString();
    }

    /// <summary>Reads <see cref="ToPaper"/>'s text back; a wrong line or fingerprint is named.</summary>
    public static OffsiteKey FromPaper(string text)
    {
        var master = new byte[Length];
        var seen = new bool[4];
        string? fingerprint = null;
        foreach (var raw in text.Split('\n'))
        {
            var line = raw.Trim();
            if (line.StartsWith("fingerprint ", StringComparison.Ordinal))
            {
                fingerprint = line["fingerprint ".Length..].Trim();
                continue;
            }
            if (line.Length < 3 || line[1] != ':' || line[0] is < '1' or > '4')
            {
                continue;
            }
            var n = line[0] - '1';
            var digits = line[2..].Replace(" ", "", StringComparison.Ordinal);
            if (digits.Length != 18 || !digits.All(char.IsAsciiHexDigit))
            {
                throw new FormatException($"key line {n + 1}: expected 16 hex digits and a 2-digit check, got '{line}'");
            }
            var bytes = Convert.FromHexString(digits[..16]);
            if (Convert.ToByte(digits[16..], 16) != Check(n, bytes))
            {
                throw new FormatException($"key line {n + 1}: its check digits do not match (a typing error on this line)");
            }
            bytes.CopyTo(master, n * 8);
            seen[n] = true;
        }
        if (seen.Any(s => !s))
        {
            throw new FormatException($"key lines {string.Join(", ", Enumerable.Range(1, 4).Where(i => !seen[i - 1]))} are missing (expected lines '1:' to '4:')");
        }
        var key = new OffsiteKey(master);
        if (fingerprint is not null && fingerprint != key.Fingerprint)
        {
            throw new FormatException($"the lines give fingerprint {key.Fingerprint}, the text says {fingerprint}");
        }
        return key;
    }

    private static byte Check(int line, ReadOnlySpan<byte> bytes)
    {
        Span<byte> input = stackalloc byte[9];
        input[0] = (byte)line;
        bytes.CopyTo(input[1..]);
        return SHA256.HashData(input)[0];
    }
}
