using System.Net.Sockets;
using System.Text;

namespace Backupd.Integration.Fixtures;

/// <summary>A stand-in for systemd's notify socket: collects the sd_notify datagrams a service sends.</summary>
public sealed class NotifySocket : IDisposable
{
    private readonly Socket socket = new(AddressFamily.Unix, SocketType.Dgram, ProtocolType.Unspecified);

    public string Path { get; } = System.IO.Path.Combine(System.IO.Path.GetTempPath(), $"bkd-notify-{Guid.NewGuid():N}.sock");

    public NotifySocket() => socket.Bind(new UnixDomainSocketEndPoint(Path));

    /// <summary>Every STATUS= line received so far (the daemon reports its current activity with them).</summary>
    public System.Collections.Concurrent.ConcurrentQueue<string> Statuses { get; } = new();

    /// <summary>Waits for the next state datagram, e.g. "READY=1" or "STOPPING=1"; STATUS= datagrams are collected in <see cref="Statuses"/>, not returned.</summary>
    public async Task<string> ReceiveAsync(TimeSpan timeout)
    {
        var buffer = new byte[4096];
        using var cts = new CancellationTokenSource(timeout);
        while (true)
        {
            var n = await socket.ReceiveAsync(buffer, SocketFlags.None, cts.Token);
            var text = Encoding.UTF8.GetString(buffer, 0, n);
            if (!text.StartsWith("STATUS=", StringComparison.Ordinal)) return text;
            Statuses.Enqueue(text);
        }
    }

    public void Dispose()
    {
        socket.Dispose();
        File.Delete(Path);
    }
}
