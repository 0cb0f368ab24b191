using System.Net.Sockets;
using System.Text;

namespace Backupd.Integration.Fixtures;

/// <summary>A stand-in for systemd's notify socket: collects the sd_notify datagrams a service sends.</summary>
public sealed class NotifySocket : IDisposable
{
    private readonly Socket socket = new(AddressFamily.Unix, SocketType.Dgram, ProtocolType.Unspecified);

    public string Path { get; } = System.IO.Path.Combine(System.IO.Path.GetTempPath(), $"bkd-notify-{Guid.NewGuid():N}.sock");

    public NotifySocket() => socket.Bind(new UnixDomainSocketEndPoint(Path));

    /// <summary>Waits for the next datagram, e.g. "READY=1" or "STOPPING=1".</summary>
    public async Task<string> ReceiveAsync(TimeSpan timeout)
    {
        var buffer = new byte[4096];
        using var cts = new CancellationTokenSource(timeout);
        var n = await socket.ReceiveAsync(buffer, SocketFlags.None, cts.Token);
        return Encoding.UTF8.GetString(buffer, 0, n);
    }

    public void Dispose()
    {
        socket.Dispose();
        File.Delete(Path);
    }
}
