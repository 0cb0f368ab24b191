using System.Diagnostics;
using System.Text;
using Backupd.Daemon.ChangedBlocks.Native;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;

namespace Backupd.Daemon.ChangedBlocks;

/// <summary>qemu-nbd could not export the image (its stderr is the message, e.g. "Bitmap 'k2' is inconsistent and cannot be used").</summary>
public sealed class QemuNbdException(string message) : IOException(message);

/// <summary>
/// A read-only NBD export of a frozen base with one dirty bitmap:
/// <c>qemu-nbd -r -f qcow2 --bitmap=NAME -k SOCK --fork --pid-file P</c>. The VM runs on its overlay meanwhile; qemu-nbd
/// takes a shared lock on the base, so it must be gone before the active commit (which needs the write lock). The
/// socket lives in a private directory of ours (qemu-nbd runs as us, not as libvirt-qemu). --fork returns once the
/// server listens; without --persistent it also ends when our one client disconnects, and <see cref="StopAsync"/>
/// makes sure of it.
/// </summary>
internal sealed class QemuNbdExport : IAsyncDisposable
{
    /// <summary>How long a SIGTERM'd qemu-nbd gets before SIGKILL.</summary>
    private const int TermSeconds = 10;
    private readonly string _directory;
    private readonly ILogger _logger;
    private bool _stopped;

    private QemuNbdExport(string directory, int pid, ILogger logger)
    {
        _directory = directory;
        Pid = pid;
        _logger = logger;
    }

    public int Pid { get; }

    public string SocketPath => Path.Combine(_directory, "nbd.sock");

    public static async Task<QemuNbdExport> StartAsync(string image, string bitmapName, ILogger? logger, CancellationToken ct)
    {
        var directory = Directory.CreateTempSubdirectory("backupd-nbd-").FullName; // mode 0700
        try
        {
            var socket = Path.Combine(directory, "nbd.sock");
            var pidFile = Path.Combine(directory, "qemu-nbd.pid");
            var info = new ProcessStartInfo("qemu-nbd") { RedirectStandardOutput = true, RedirectStandardError = true, StandardErrorEncoding = Encoding.UTF8 };
            foreach (var a in new[] { "-r", "-f", "qcow2", "--bitmap=" + bitmapName, "-k", socket, "--fork", "--pid-file", pidFile, image })
            {
                info.ArgumentList.Add(a);
            }
            Process? started;
            try
            {
                started = Process.Start(info);
            }
            catch (System.ComponentModel.Win32Exception e)
            {
                throw new QemuNbdException($"cannot run qemu-nbd ({e.Message}): apt-get install -y qemu-utils");
            }
            using var process = started ?? throw new QemuNbdException("cannot run qemu-nbd: apt-get install -y qemu-utils");
            var stderr = process.StandardError.ReadToEndAsync(CancellationToken.None);
            _ = process.StandardOutput.ReadToEndAsync(CancellationToken.None);
            // Not cancelled midway: the parent returns once the server listens or failed, and the pid must be known to stop it.
            await process.WaitForExitAsync(CancellationToken.None);
            if (process.ExitCode != 0)
            {
                throw new QemuNbdException($"qemu-nbd could not export {image} with bitmap '{bitmapName}' (exit {process.ExitCode}): {(await stderr).Trim()}");
            }
            var pid = ReadPid(pidFile);
            var export = new QemuNbdExport(directory, pid, logger ?? NullLogger.Instance);
            if (ct.IsCancellationRequested)
            {
                await export.StopAsync();
                ct.ThrowIfCancellationRequested();
            }
            return export;
        }
        catch
        {
            TryDelete(directory);
            throw;
        }
    }

    private static int ReadPid(string pidFile)
    {
        var text = File.Exists(pidFile) ? File.ReadAllText(pidFile).Trim() : "";
        return int.TryParse(text, out var pid) && pid > 1
            ? pid
            : throw new QemuNbdException($"qemu-nbd started but its pid file {pidFile} holds '{text}'");
    }

    /// <summary>Ends qemu-nbd and waits until the process is gone (its lock on the base with it); idempotent.</summary>
    public async Task StopAsync()
    {
        if (_stopped)
        {
            return;
        }
        _stopped = true;
        await Terminate(Pid, _logger);
        TryDelete(_directory);
    }

    public async ValueTask DisposeAsync() => await StopAsync();

    /// <summary>
    /// For <c>recover</c>: stops a qemu-nbd an interrupted run left serving (the pid from the run journal). A pid that is no
    /// longer a qemu-nbd (exited, reused) is left alone. Returns true when one was stopped.
    /// </summary>
    public static bool StopLeftover(int pid, ILogger? logger)
    {
        if (!IsQemuNbd(pid))
        {
            return false;
        }
        Terminate(pid, logger ?? NullLogger.Instance).GetAwaiter().GetResult();
        ChangedBlocksLog.LeftoverExportStopped(logger ?? NullLogger.Instance, pid);
        return true;
    }

    internal static bool IsQemuNbd(int pid)
    {
        try
        {
            var cmdline = File.ReadAllBytes($"/proc/{pid}/cmdline");
            var argv0 = Encoding.UTF8.GetString(cmdline).Split('\0')[0];
            return Path.GetFileName(argv0) == "qemu-nbd" && !IsZombie(pid);
        }
        catch (IOException)
        {
            return false;
        }
        catch (UnauthorizedAccessException)
        {
            return false;
        }
    }

    private static async Task Terminate(int pid, ILogger logger)
    {
        if (!Alive(pid))
        {
            return;
        }
        Interop.Kill(pid, Interop.SIGTERM);
        var watch = Stopwatch.StartNew();
        while (Alive(pid))
        {
            if (watch.Elapsed > TimeSpan.FromSeconds(TermSeconds))
            {
                Interop.Kill(pid, Interop.SIGKILL);
                ChangedBlocksLog.ExportKilled(logger, pid, TermSeconds);
                while (Alive(pid) && watch.Elapsed < TimeSpan.FromSeconds(TermSeconds * 3))
                {
                    await Task.Delay(20);
                }
                return;
            }
            await Task.Delay(10);
        }
    }

    /// <summary>Exists and is not a zombie (a detached qemu-nbd is reaped by init, not by us).</summary>
    private static bool Alive(int pid) => Directory.Exists($"/proc/{pid}") && !IsZombie(pid);

    private static bool IsZombie(int pid)
    {
        try
        {
            var stat = File.ReadAllText($"/proc/{pid}/stat");
            var close = stat.LastIndexOf(')');
            return close < 0 || close + 2 >= stat.Length || stat[close + 2] is 'Z' or 'X';
        }
        catch (IOException)
        {
            return true; // gone meanwhile
        }
    }

    private static void TryDelete(string directory)
    {
        try
        {
            Directory.Delete(directory, recursive: true);
        }
        catch (IOException)
        {
        }
        catch (UnauthorizedAccessException)
        {
        }
    }
}
