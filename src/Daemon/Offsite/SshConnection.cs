using System.Diagnostics;
using System.Text;
using Backupd.Storage.Offsite;

namespace Backupd.Daemon.Offsite;

/// <summary>
/// The ssh process behind a remote <see cref="CopyTarget"/>: `ssh [-p PORT] USER@HOST backupd serve --repository
/// 'PATH'`, the protocol on its stdin/stdout, its stderr kept (the last lines) to explain a failed connection.
/// An authorized_keys `command="backupd serve --repository ... --append-only"` on the remote side overrides what
/// is asked here (docs/operations.md, "Offsite copies").
/// </summary>
internal sealed class SshConnection : IDisposable
{
    private const int KeptStderr = 4096;
    private readonly Process _process;
    private readonly StringBuilder _stderr = new();

    private SshConnection(Process process)
    {
        _process = process;
        process.ErrorDataReceived += (_, e) =>
        {
            if (e.Data is null)
            {
                return;
            }
            lock (_stderr)
            {
                _stderr.AppendLine(e.Data);
                if (_stderr.Length > KeptStderr)
                {
                    _stderr.Remove(0, _stderr.Length - KeptStderr);
                }
            }
        };
        process.BeginErrorReadLine();
    }

    public static RemoteChunkStore Open(CopyTarget target)
    {
        var command = (Environment.GetEnvironmentVariable(CopyTarget.SshVariable) is { Length: > 0 } ssh ? ssh : "ssh")
            .Split(' ', StringSplitOptions.RemoveEmptyEntries);
        var info = SshStartInfo(command, target);
        if (SshCipherOrder.AesIsFast && !SshCipherOrder.ChosenBy(command[1..]) && PreferredCiphers(command, target) is { } ciphers)
        {
            var at = info.ArgumentList.IndexOf("--");
            info.ArgumentList.Insert(at, "-o");
            info.ArgumentList.Insert(at + 1, $"Ciphers={ciphers}");
        }
        var program = Environment.GetEnvironmentVariable(CopyTarget.RemoteProgramVariable) is { Length: > 0 } p ? p : "backupd";
        info.ArgumentList.Add($"{program} serve --repository '{target.Path}'");
        Process process;
        try
        {
            process = Process.Start(info) ?? throw new InvalidOperationException($"could not start {command[0]}");
        }
        catch (System.ComponentModel.Win32Exception e)
        {
            throw new Storage.Repository.RepositoryException($"{target}: cannot run '{command[0]}' ({e.Message}); install the ssh client (apt-get install -y openssh-client) or set {CopyTarget.SshVariable}", e);
        }
        var connection = new SshConnection(process);
        try
        {
            return new RemoteChunkStore(process.StandardInput.BaseStream, process.StandardOutput.BaseStream, target.Text, connection, connection.Stderr);
        }
        catch
        {
            connection.Dispose();
            throw;
        }
    }

    /// <summary>`SSH [ARGS] [-p PORT] -- USER@HOST` with every stream redirected; the remote command is added by the caller.</summary>
    private static ProcessStartInfo SshStartInfo(string[] command, CopyTarget target)
    {
        var info = new ProcessStartInfo(command[0])
        {
            RedirectStandardInput = true,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        foreach (var a in command[1..])
        {
            info.ArgumentList.Add(a);
        }
        if (target.Port is { } port)
        {
            info.ArgumentList.Add("-p");
            info.ArgumentList.Add(port.ToString(System.Globalization.CultureInfo.InvariantCulture));
        }
        info.ArgumentList.Add("--");
        info.ArgumentList.Add(target.UserHost!);
        return info;
    }

    /// <summary>
    /// The cipher list of <see cref="SshCipherOrder.Preferred"/> for this host, from `ssh -G` (which only prints the
    /// configuration, connecting nowhere); null when it has nothing to change or ssh cannot say (the copy then
    /// goes on with ssh's own order).
    /// </summary>
    internal static string? PreferredCiphers(string[] command, CopyTarget target)
    {
        var info = SshStartInfo(command, target);
        info.ArgumentList.Insert(info.ArgumentList.IndexOf("--"), "-G");
        info.RedirectStandardInput = false;
        try
        {
            using var probe = Process.Start(info);
            if (probe is null)
            {
                return null;
            }
            probe.ErrorDataReceived += (_, _) => { }; // drained, not kept: the real connection reports its own errors
            probe.BeginErrorReadLine();
            // No timeout: `ssh -G` connects nowhere and ends at once; only a `Match exec` of the user's own config could
            // block it, and that would block the connection itself just the same. (A timed wait also misfires when the
            // clock is moved with libfaketime, which the clock-shifted test runs do.)
            var output = probe.StandardOutput.ReadToEnd();
            probe.WaitForExit();
            return probe.ExitCode == 0 ? SshCipherOrder.Preferred(output) : null;
        }
        catch (System.ComponentModel.Win32Exception)
        {
            return null; // no ssh: the connection below says so, with the package to install
        }
    }

    /// <summary>What ssh (or the remote backupd) said on stderr, once it has ended or after a moment.</summary>
    private string? Stderr()
    {
        _ = _process.WaitForExit(2000);
        lock (_stderr)
        {
            var text = _stderr.ToString().Trim();
            return text.Length == 0 ? (_process.HasExited ? $"ssh exited with status {_process.ExitCode}" : null) : text.Replace('\n', ' ');
        }
    }

    public void Dispose()
    {
        try
        {
            _process.StandardInput.Close();
        }
        catch (Exception e) when (e is IOException or ObjectDisposedException)
        {
            // already closed by the store (its end of the protocol), or ssh is gone
        }
        if (!_process.WaitForExit(10_000))
        {
            _process.Kill(entireProcessTree: true);
        }
        _process.Dispose();
    }
}
