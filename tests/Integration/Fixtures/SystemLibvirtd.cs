using System.Diagnostics;
using System.Globalization;

namespace Backupd.Integration.Fixtures;

/// <summary>
/// Stops and starts the machine's own libvirtd, for the tests that restart it for real (LibvirtdRestartTests, which
/// run alone). Started again exactly as scripts/setup-env starts it (`setsid /usr/sbin/libvirtd -d`, or systemctl
/// where systemd is PID 1), then waited for until its socket answers. Callers restore it in a finally with
/// <see cref="EnsureRunningAsync"/>, whatever happened.
/// </summary>
internal static class SystemLibvirtd
{
    public const string Socket = "/run/libvirt/libvirt-sock";
    private static readonly TimeSpan StopLimit = TimeSpan.FromSeconds(30), StartLimit = TimeSpan.FromSeconds(60);

    private static bool SystemdIsInit => File.Exists("/proc/1/comm") && File.ReadAllText("/proc/1/comm").Trim() == "systemd";

    /// <summary>Stops libvirtd (SIGTERM: its clean shutdown; QEMU processes keep running), waits <paramref name="downtime"/>, starts it.</summary>
    /// <returns>How long libvirtd was not answering.</returns>
    public static async Task<TimeSpan> RestartAsync(TimeSpan downtime)
    {
        var clock = Stopwatch.StartNew();
        await StopAsync();
        await Task.Delay(downtime);
        await StartAsync();
        return clock.Elapsed;
    }

    public static async Task StopAsync()
    {
        if (SystemdIsInit)
        {
            await Tools.RunAsync("systemctl", "stop", "libvirtd");
            return;
        }
        var pids = Pids();
        if (pids.Count == 0) throw new InvalidOperationException("libvirtd is not running: run scripts/setup-env (it starts it)");
        foreach (var pid in pids) await Tools.TryRunAsync("kill", "-TERM", pid.ToString(CultureInfo.InvariantCulture));
        var deadline = DateTime.UtcNow + StopLimit;
        while (pids.Any(p => Directory.Exists($"/proc/{p}")))
        {
            if (DateTime.UtcNow > deadline)
            {
                foreach (var pid in pids) await Tools.TryRunAsync("kill", "-KILL", pid.ToString(CultureInfo.InvariantCulture));
                break;
            }
            await Task.Delay(50);
        }
    }

    /// <summary>Starts libvirtd unless it runs, then waits until a client gets an answer through its socket.</summary>
    public static async Task EnsureRunningAsync()
    {
        if (Pids().Count == 0) await StartAsync();
        else await WaitAnsweringAsync();
    }

    private static async Task StartAsync()
    {
        if (SystemdIsInit) await Tools.RunAsync("systemctl", "start", "libvirtd");
        // As scripts/setup-env does; stdio to /dev/null so the daemon keeps none of this test's pipes open.
        else await Tools.RunAsync("sh", "-c", "cd / && exec setsid /usr/sbin/libvirtd -d </dev/null >/dev/null 2>&1");
        await WaitAnsweringAsync();
    }

    private static async Task WaitAnsweringAsync()
    {
        var deadline = DateTime.UtcNow + StartLimit;
        while (true)
        {
            if (File.Exists(Socket) && (await Tools.TryRunAsync("virsh", "-c", "qemu:///system", "version")).ExitCode == 0) return;
            if (DateTime.UtcNow > deadline) throw new TimeoutException($"libvirtd did not answer on {Socket} within {StartLimit.TotalSeconds} s of starting it");
            await Task.Delay(100);
        }
    }

    /// <summary>Processes named exactly libvirtd (its comm).</summary>
    private static List<int> Pids() =>
        [.. Directory.EnumerateDirectories("/proc")
            .Select(d => int.TryParse(Path.GetFileName(d), out var pid) ? pid : 0)
            .Where(pid => pid > 0 && Comm(pid) == "libvirtd")];

    private static string? Comm(int pid)
    {
        try { return File.ReadAllText($"/proc/{pid}/comm").Trim(); }
        catch (IOException) { return null; }
        catch (UnauthorizedAccessException) { return null; }
    }
}
