using System.Diagnostics;
using System.Text;

namespace Backupd.Integration.Fixtures;

/// <summary>Runs the real command-line tools the harness uses to set up and inspect (virsh, qemu-img, qemu-io).</summary>
public static class Tools
{
    public const string SetupHint = "run scripts/setup-env as root (installs libvirt-daemon-system qemu-system-x86 qemu-utils postgresql and starts libvirtd and PostgreSQL)";

    /// <summary>Runs a tool and returns its stdout; throws with the command line and stderr when it fails.</summary>
    public static async Task<string> RunAsync(string file, params string[] args)
    {
        var (code, stdout, stderr) = await TryRunAsync(file, args);
        if (code != 0)
            throw new InvalidOperationException($"`{Describe(file, args)}` exited {code}: {stderr.Trim()} {stdout.Trim()}");
        return stdout;
    }

    public static async Task<(int ExitCode, string Stdout, string Stderr)> TryRunAsync(string file, params string[] args)
    {
        var info = new ProcessStartInfo(file)
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            StandardOutputEncoding = Encoding.UTF8,
        };
        foreach (var a in args) info.ArgumentList.Add(a);
        Process process;
        try
        {
            process = Process.Start(info)!;
        }
        catch (System.ComponentModel.Win32Exception e)
        {
            throw new InvalidOperationException($"`{file}` is not installed ({e.Message}): {SetupHint}", e);
        }
        using (process)
        {
            var stdout = process.StandardOutput.ReadToEndAsync();
            var stderr = process.StandardError.ReadToEndAsync();
            await process.WaitForExitAsync();
            return (process.ExitCode, await stdout, await stderr);
        }
    }

    public static Task<string> Virsh(params string[] args) => RunAsync("virsh", ["-c", "qemu:///system", .. args]);

    private static string Describe(string file, string[] args) =>
        string.Join(' ', new[] { file }.Concat(args.Select(a => a.Contains(' ', StringComparison.Ordinal) ? $"'{a}'" : a)));
}
