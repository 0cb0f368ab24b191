using System.Net.Sockets;
using System.Text;
using Microsoft.Extensions.Hosting.Systemd;

namespace Backupd.Daemon.Hosting;

/// <summary>
/// sd_notify (READY=1, STOPPING=1, STATUS=, WATCHDOG=1) that never blocks its caller. The library's SystemdNotifier sends
/// on a blocking datagram socket: when the receiver does not read, its queue fills (net.unix.max_dgram_qlen, 10 by
/// default) and the next send waits forever. SystemdLifetime sends STOPPING=1 from the SIGTERM handler while it holds
/// the application lifetime's lock, which the host's own stop takes first: one blocked send and SIGTERM was ignored,
/// the scheduler kept firing. Here a datagram the receiver's queue cannot take is handed to one background sender (in
/// order) that retries it for at most <see cref="FullQueueWait"/>, then drops it: a status systemd does not read is
/// worth less than a stop that happens, and the stop path itself never waits, not even those 5 s.
/// </summary>
public sealed class NonBlockingNotifier : ISystemdNotifier, IDisposable
{
    public static readonly TimeSpan FullQueueWait = TimeSpan.FromSeconds(5);
    private static readonly TimeSpan RetryDelay = TimeSpan.FromMilliseconds(20);
    // A receiver that never reads must not grow the backlog for the daemon's lifetime (STATUS= at every progress step).
    private const int MaxBacklog = 64;

    private readonly UnixDomainSocketEndPoint? _endpoint;
    private readonly Socket? _socket;
    private readonly System.Collections.Concurrent.BlockingCollection<byte[]> _backlog = new();
    private readonly object _order = new();
    private int _pending; // datagrams handed to the background sender and not yet sent or dropped
    private Thread? _sender;

    public NonBlockingNotifier() : this(Environment.GetEnvironmentVariable("NOTIFY_SOCKET")) { }

    public NonBlockingNotifier(string? socketPath)
    {
        if (string.IsNullOrEmpty(socketPath)) return;
        // '@' names a socket in the abstract namespace (leading NUL), as sd_notify(3) says.
        _endpoint = new UnixDomainSocketEndPoint(socketPath[0] == '@' ? "\0" + socketPath[1..] : socketPath);
        _socket = new Socket(AddressFamily.Unix, SocketType.Dgram, ProtocolType.Unspecified) { Blocking = false };
    }

    public bool IsEnabled => _endpoint is not null;

    /// <summary>Datagrams dropped because the receiver's queue stayed full (for tests and diagnostics).</summary>
    public int Dropped => Volatile.Read(ref _dropped);
    private int _dropped;

    public void Notify(ServiceState state)
    {
        if (_endpoint is null || _socket is null) return;
        var data = Encoding.UTF8.GetBytes(state.ToString());
        lock (_order)
        {
            // Behind a backlog the datagram waits its turn: systemd must see READY, STATUS and STOPPING in order.
            if (_pending == 0)
            {
                if (TrySend(data, out var full)) return;
                if (!full) { Interlocked.Increment(ref _dropped); return; } // no receiver at all
            }
            if (_backlog.IsAddingCompleted || _pending >= MaxBacklog) { Interlocked.Increment(ref _dropped); return; }
            _pending++;
            _sender ??= StartSender();
            _backlog.Add(data);
        }
    }

    private Thread StartSender()
    {
        var thread = new Thread(SendBacklog) { IsBackground = true, Name = "sd_notify backlog" };
        thread.Start();
        return thread;
    }

    private void SendBacklog()
    {
        foreach (var data in _backlog.GetConsumingEnumerable())
        {
            var deadline = Environment.TickCount64 + (long)FullQueueWait.TotalMilliseconds;
            while (!TrySend(data, out var full))
            {
                if (!full || Environment.TickCount64 >= deadline) { Interlocked.Increment(ref _dropped); break; }
                Thread.Sleep(RetryDelay);
            }
            lock (_order) _pending--;
        }
        _socket?.Dispose();
    }

    /// <summary>The backlog still being retried is sent (or dropped) by its thread, which then closes the socket.</summary>
    public void Dispose()
    {
        lock (_order)
        {
            if (_backlog.IsAddingCompleted) return;
            _backlog.CompleteAdding();
            if (_sender is null) _socket?.Dispose();
        }
    }

    /// <summary>One non-blocking send; <paramref name="full"/> says a refusal was the receiver's full queue.</summary>
    private bool TrySend(byte[] data, out bool full)
    {
        try
        {
            _socket!.SendTo(data, _endpoint!);
            full = false;
            return true;
        }
        catch (SocketException e)
        {
            // Queue full → retry later; anything else (socket gone): like sd_notify, a notification is best effort.
            full = e.SocketErrorCode is SocketError.WouldBlock or SocketError.TryAgain or SocketError.NoBufferSpaceAvailable;
            return false;
        }
        catch (ObjectDisposedException)
        {
            full = false; // after the host's disposal
            return false;
        }
    }
}
