using System.Diagnostics;

namespace Backupd.Integration.Fixtures;

/// <summary>
/// The "remote host" of the offsite-copy tests: the real sshd on this machine and the local user backupd-remote
/// (both made by scripts/setup-env), a throwaway key pair, and this build of backupd copied where that user can run
/// it. Two keys, as an operator would set them up: one forced to `serve --append-only`, one allowed to delete.
/// Everything is removed again on dispose (the keys' lines in authorized_keys included).
/// </summary>
public sealed class SshRemote : IDisposable
{
    public const string User = "backupd-remote";
    private const string Home = "/var/lib/backupd-remote";
    private readonly string _id = Guid.NewGuid().ToString("N")[..8];
    private readonly List<string> _lines = [];

    public SshRemote()
    {
        if (Environment.UserName != "root")
            throw new InvalidOperationException("the SSH copy tests create files for another user and must run as root");
        if (!File.Exists("/usr/sbin/sshd") || !SshdListens() || !Directory.Exists(Home))
            throw new InvalidOperationException($"sshd must run and the user {User} exist: {Tools.SetupHint} (it installs openssh-server, starts sshd and creates {User})");
        Local = Directory.CreateTempSubdirectory("bkd-ssh-").FullName;
        // The user's backupd: this build, in a directory the user can read (the test output is under root's tree).
        ServeDirectory = $"/tmp/bkd-serve-{_id}";
        CopyTree(AppContext.BaseDirectory, ServeDirectory);
        RepositoryPath = $"{Home}/copies-{_id}";
        AppendOnlyKey = NewKey("append-only", "--append-only");
        WritableKey = NewKey("writable", "");
    }

    public string Local { get; }
    public string ServeDirectory { get; }
    public string RepositoryPath { get; }
    public string AppendOnlyKey { get; }
    public string WritableKey { get; }

    /// <summary>The target URL (its path is ignored: the key's forced command names the repository).</summary>
    public string Target => $"ssh://{User}@127.0.0.1{RepositoryPath}";

    /// <summary>BACKUPD_SSH for a client using <paramref name="key"/>.</summary>
    public static Dictionary<string, string> Environment_(string key) => new()
    {
        ["BACKUPD_SSH"] = $"ssh -i {key} -o BatchMode=yes -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o LogLevel=ERROR",
    };

    private string NewKey(string name, string serveOptions)
    {
        var key = Path.Combine(Local, $"id-{name}");
        Tools.RunAsync("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", $"bkd-test-{_id}-{name}", "-f", key).GetAwaiter().GetResult();
        var line = $"command=\"dotnet {ServeDirectory}/backupd.dll serve --repository {RepositoryPath} {serveOptions}\",restrict {File.ReadAllText(key + ".pub").Trim()}";
        Directory.CreateDirectory($"{Home}/.ssh");
        File.AppendAllLines($"{Home}/.ssh/authorized_keys", [line]);
        _lines.Add(line);
        Tools.RunAsync("chown", "-R", $"{User}:", $"{Home}/.ssh").GetAwaiter().GetResult();
        Tools.RunAsync("chmod", "700", $"{Home}/.ssh").GetAwaiter().GetResult();
        Tools.RunAsync("chmod", "600", $"{Home}/.ssh/authorized_keys").GetAwaiter().GetResult();
        return key;
    }

    private static void CopyTree(string from, string to)
    {
        Directory.CreateDirectory(to);
        foreach (var dir in Directory.EnumerateDirectories(from, "*", SearchOption.AllDirectories))
            Directory.CreateDirectory(Path.Combine(to, Path.GetRelativePath(from, dir)));
        foreach (var file in Directory.EnumerateFiles(from, "*", SearchOption.AllDirectories))
            File.Copy(file, Path.Combine(to, Path.GetRelativePath(from, file)));
        Tools.RunAsync("chmod", "-R", "a+rX", to).GetAwaiter().GetResult();
    }

    private static bool SshdListens()
    {
        try
        {
            using var probe = new System.Net.Sockets.TcpClient();
            probe.Connect("127.0.0.1", 22);
            return true;
        }
        catch (System.Net.Sockets.SocketException)
        {
            return false;
        }
    }

    /// <summary>The server processes of this fixture's repository (run as the remote user).</summary>
    public int[] ServerPids() => Process.GetProcesses()
        .Where(p => { try { return File.ReadAllText($"/proc/{p.Id}/cmdline").Contains($"serve\0--repository\0{RepositoryPath}", StringComparison.Ordinal); } catch (IOException) { return false; } catch (UnauthorizedAccessException) { return false; } })
        .Select(p => p.Id).ToArray();

    public void Dispose()
    {
        var file = $"{Home}/.ssh/authorized_keys";
        if (File.Exists(file))
            File.WriteAllLines(file, File.ReadAllLines(file).Where(l => !_lines.Contains(l)));
        foreach (var dir in new[] { ServeDirectory, RepositoryPath, Local })
        {
            try { Directory.Delete(dir, recursive: true); }
            catch (DirectoryNotFoundException) { }
        }
    }
}
