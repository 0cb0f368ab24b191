using Backupd.Storage.Offsite;

namespace Backupd.Daemon.Offsite;

/// <summary>
/// Where a copy goes: a local directory (a USB disk, an NFS mount), or <c>ssh://[user@]host[:port]/path</c>, served
/// there by `backupd serve` through the user's own ssh (its config, keys and known_hosts; BACKUPD_SSH replaces the
/// command, e.g. "ssh -i /etc/backupd/copy_ed25519", and BACKUPD_REMOTE_BACKUPD the remote program).
/// </summary>
public sealed record CopyTarget(string Text, string? UserHost, int? Port, string Path)
{
    public const string SshVariable = "BACKUPD_SSH";
    public const string RemoteProgramVariable = "BACKUPD_REMOTE_BACKUPD";

    public bool IsRemote => UserHost is not null;

    /// <summary>Parses a target; a malformed one is an <see cref="ArgumentException"/> saying what is expected.</summary>
    public static CopyTarget Parse(string text)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(text);
        if (!text.StartsWith("ssh://", StringComparison.Ordinal))
        {
            if (text.Contains("://", StringComparison.Ordinal))
            {
                throw new ArgumentException($"copy target '{text}': only local paths and ssh://[user@]host[:port]/path are supported");
            }
            return new CopyTarget(text, null, null, System.IO.Path.GetFullPath(text));
        }
        var rest = text["ssh://".Length..];
        var slash = rest.IndexOf('/', StringComparison.Ordinal);
        if (slash <= 0 || slash == rest.Length - 1)
        {
            throw new ArgumentException($"copy target '{text}': expected ssh://[user@]host[:port]/absolute/path");
        }
        var authority = rest[..slash];
        var path = rest[slash..];
        int? port = null;
        var colon = authority.LastIndexOf(':');
        if (colon > 0)
        {
            port = int.TryParse(authority[(colon + 1)..], out var p) && p is > 0 and < 65536
                ? p
                : throw new ArgumentException($"copy target '{text}': port '{authority[(colon + 1)..]}' is not a number from 1 to 65535");
            authority = authority[..colon];
        }
        if (authority.Length == 0 || authority.StartsWith('-') || authority.Any(c => char.IsWhiteSpace(c) || char.IsControl(c)))
        {
            throw new ArgumentException($"copy target '{text}': '{authority}' is not a [user@]host");
        }
        if (path.Any(c => c is '\'' || char.IsControl(c)))
        {
            throw new ArgumentException($"copy target '{text}': the path may not contain quotes or control characters");
        }
        return new CopyTarget(text, authority, port, path);
    }

    /// <summary>Connects: opens the directory, or starts ssh with `backupd serve` on the other side.</summary>
    public IChunkStore Connect() => IsRemote ? SshConnection.Open(this) : LocalChunkStore.Open(Path);

    public override string ToString() => Text;
}
