using System.CommandLine;
using Backupd.Storage.Offsite;

namespace Backupd.Daemon.Offsite;

/// <summary>What the copy commands share: the --key option and opening a copy repository with it.</summary>
internal static class OffsiteCli
{
    public static Option<string?> KeyOption() =>
        new("--key") { Description = $"The offsite key file (default: the systemd credential '{OffsiteKey.CredentialName}', else {OffsiteKey.DefaultPath}); made by `backupd key create`" };

    public static OffsiteKey LoadKey(string? path) => OffsiteKey.Load(path ?? OffsiteKey.DefaultPath);

    /// <summary>Connects to <paramref name="target"/> and opens its copy repository (<paramref name="create"/>: make one in an empty target).</summary>
    public static CopyRepository Open(string target, string? keyPath, bool create)
    {
        var key = LoadKey(keyPath); // first: a missing key fails before any connection is made
        var store = CopyTarget.Parse(target).Connect();
        try
        {
            return CopyRepository.Open(store, key, create);
        }
        catch
        {
            store.Dispose();
            throw;
        }
    }
}
