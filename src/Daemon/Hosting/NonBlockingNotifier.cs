using System.Net.Sockets;
using System.Text;
using Microsoft.Extensions.Hosting.Systemd;

namespace Backupd.Daemon.Hosting;

/// <summary>
/// sd_notify (READY=1, STOPPING=1, STATUS=, WATCHDOG=1) that never blocks for long. The library's SystemdNotifier sends
/// on a blocking datagram socket: when the receiver does not read, its queue fills (net.unix.max_dgram_qlen, 10 by
/// default) and the next send waits forever. SystemdLifetime sends STOPPING=1 from the SIGTERM handler while it holds
/// the application lifetime's lock, which the host's own stop takes first: one blocked send and SIGTERM was ignored,
/// the scheduler kept firing. Here a full queue is retried for at most <see cref="FullQueueWait"/>, then the datagram is
/// dropped: a status systemd does not read is worth less than a stop that happens.
/// </summary>
public sealed class NonBlockingNotifier : ISystemdNotifier
{
    public static readonly TimeSpan FullQueueWait = TimeSpan.FromSeconds(5);
    private static readonly TimeSpan RetryDelay = TimeSpan.FromMilliseconds(20);

    private readonly UnixDomainSocketEndPoint? _endpoint;

    public NonBlockingNotifier() : this(Environment.GetEnvironmentVariable("NOTIFY_SOCKET")) { }

    public NonBlockingNotifier(string? socketPath)
    {
        if (string.IsNullOrEmpty(socketPath)) return;
        // '@' names a socket in the abstract namespace (leading NUL), as sd_notify(3) says.
        _endpoint = new UnixDomainSocketEndPoint(socketPath[0] == '@' ? "\0" + socketPath[1..] : socketPath);
    }

    public bool IsEnabled => _endpoint is not null;

    /// <summary>Datagrams dropped because the receiver's queue stayed full (for tests and diagnostics).</summary>
    public int Dropped => Volatile.Read(ref _dropped);
    private int _dropped;

    public void Notify(ServiceState state)
    {
        if (_endpoint is null) return;
        var data = Encoding.UTF8.GetBytes(state.ToString());
        using var socket = new Socket(AddressFamily.Unix, SocketType.Dgram, ProtocolType.Unspecified) { Blocking = false };
        var deadline = Environment.TickCount64 + (long)FullQueueWait.TotalMilliseconds;
        while (true)
        {
            try
            {
                socket.SendTo(data, _endpoint);
                return;
            }
            catch (SocketException e) when (e.SocketErrorCode is SocketError.WouldBlock or SocketError.TryAgain or SocketError.NoBufferSpaceAvailable
                && Environment.TickCount64 < deadline)
            {
                Thread.Sleep(RetryDelay);
            }
            catch (SocketException)
            {
                // Queue still full, or no receiver at all (socket gone): like sd_notify, a notification is best effort.
                Interlocked.Increment(ref _dropped);
                return;
            }
        }
    }
}
