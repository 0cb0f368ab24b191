using System.Net.Sockets;

namespace Backupd.Integration;

/// <summary>
/// A Unix-socket relay in front of libvirtd's socket, for a client that connects with
/// <c>qemu+unix:///system?socket=PATH</c>. <see cref="Stop"/> is what the client sees of a libvirtd
/// restart (every connection closes, new ones are refused) without stopping the shared libvirtd;
/// <see cref="Start"/> brings it back.
/// </summary>
internal sealed class LibvirtSocketProxy : IDisposable
{
    private const string Upstream = "/run/libvirt/libvirt-sock";
    private readonly Lock gate = new();
    private readonly List<Socket> open = [];
    private Socket? listener;

    public string Path { get; } = $"/tmp/bkd-lv-{Guid.NewGuid():N}"[..20] + ".sock";
    public string Uri => $"qemu+unix:///system?socket={Path}";

    public void Start()
    {
        lock (gate)
        {
            if (listener is not null) return;
            File.Delete(Path);
            var socket = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
            socket.Bind(new UnixDomainSocketEndPoint(Path));
            socket.Listen(16);
            listener = socket;
            _ = AcceptAsync(socket);
        }
    }

    /// <summary>Closes the listener and every relayed connection (the client reads EOF), removes the socket file.</summary>
    public void Stop()
    {
        lock (gate)
        {
            listener?.Dispose();
            listener = null;
            foreach (var s in open) s.Dispose();
            open.Clear();
            File.Delete(Path);
        }
    }

    private async Task AcceptAsync(Socket socket)
    {
        while (true)
        {
            Socket client;
            try { client = await socket.AcceptAsync(); }
            catch (Exception e) when (e is SocketException or ObjectDisposedException) { return; }
            var server = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
            try { await server.ConnectAsync(new UnixDomainSocketEndPoint(Upstream)); }
            catch (SocketException)
            {
                client.Dispose();
                server.Dispose();
                continue;
            }
            lock (gate)
            {
                if (listener != socket)
                {
                    client.Dispose();
                    server.Dispose();
                    return;
                }
                open.Add(client);
                open.Add(server);
            }
            _ = PumpAsync(client, server);
            _ = PumpAsync(server, client);
        }
    }

    private static async Task PumpAsync(Socket from, Socket to)
    {
        var buffer = new byte[64 * 1024];
        try
        {
            while (true)
            {
                var n = await from.ReceiveAsync(buffer, SocketFlags.None);
                if (n == 0) break;
                await to.SendAsync(buffer.AsMemory(0, n), SocketFlags.None);
            }
        }
        catch (Exception e) when (e is SocketException or ObjectDisposedException)
        {
        }
        try { to.Shutdown(SocketShutdown.Both); }
        catch (Exception e) when (e is SocketException or ObjectDisposedException) { }
    }

    public void Dispose() => Stop();
}
