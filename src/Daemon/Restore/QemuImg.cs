using System.Diagnostics;
using System.Text;

namespace Backupd.Daemon.Restore;

/// <summary>The few qemu-img operations a restore needs. Arguments are passed as a list (no shell).</summary>
public static class QemuImg
{
    /// <summary>Rewrites the backing reference in the image header only (`rebase -u`): data is untouched.</summary>
    public static Task RebaseUnsafeAsync(string image, string backingFile, string backingFormat, CancellationToken ct) =>
        RunAsync(ct, "rebase", "-u", "-f", "qcow2", "-b", backingFile, "-F", backingFormat, image);

    /// <summary>Writes the whole chain under <paramref name="top"/> as one standalone image.</summary>
    public static Task ConvertAsync(string top, string topFormat, string target, string targetFormat, CancellationToken ct) =>
        RunAsync(ct, "convert", "-f", topFormat, "-O", targetFormat, top, target);

    /// <summary>True when the guest-visible contents are equal (`qemu-img compare`, exit 0 equal, 1 different).</summary>
    public static async Task<bool> CompareAsync(string a, string b, CancellationToken ct)
    {
        var (code, _, stderr) = await TryRunAsync(ct, "compare", "-U", a, b);
        return code switch
        {
            0 => true,
            1 => false,
            _ => throw new RestoreException($"qemu-img compare {a} {b} failed: {stderr.Trim()}"),
        };
    }

    public static async Task RunAsync(CancellationToken ct, params string[] args)
    {
        var (code, _, stderr) = await TryRunAsync(ct, args);
        if (code != 0)
            throw new RestoreException($"qemu-img {string.Join(' ', args)} failed (exit {code}): {stderr.Trim()}");
    }

    private static async Task<(int Code, string Stdout, string Stderr)> TryRunAsync(CancellationToken ct, params string[] args)
    {
        var info = new ProcessStartInfo("qemu-img") { RedirectStandardOutput = true, RedirectStandardError = true, StandardErrorEncoding = Encoding.UTF8 };
        foreach (var a in args) info.ArgumentList.Add(a);
        Process process;
        try { process = Process.Start(info)!; }
        catch (System.ComponentModel.Win32Exception e) { throw new RestoreException("qemu-img is not installed (apt-get install qemu-utils)", e); }
        using (process)
        {
            var stdout = process.StandardOutput.ReadToEndAsync(ct);
            var stderr = process.StandardError.ReadToEndAsync(ct);
            try { await process.WaitForExitAsync(ct); }
            catch (OperationCanceledException) { process.Kill(); throw; }
            return (process.ExitCode, await stdout, await stderr);
        }
    }
}
