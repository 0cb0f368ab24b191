using System.Net;
using System.Net.Sockets;

namespace Backupd.Integration.Fixtures;

/// <summary>
/// A byte relay between a listening endpoint and an upstream server, for outages without stopping a shared
/// server: <see cref="Stop"/> closes every relayed connection (the client reads EOF) and refuses new ones,
/// <see cref="Start"/> listens again on the same endpoint.
/// </summary>
internal sealed class SocketRelay(Func<Socket> newListener, Func<Socket> newUpstream, EndPoint upstream) : IDisposable
{
    private readonly Lock gate = new();
    private readonly List<Socket> open = [];
    private Socket? listener;

    /// <summary>Called after the listener is closed (e.g. to remove a Unix socket file).</summary>
    public Action? OnStopped { get; init; }

    /// <summary>The endpoint the first start bound (a TCP port chosen by the kernel is kept across restarts).</summary>
    public EndPoint? Bound { get; private set; }

    public void Start()
    {
        lock (gate)
        {
            if (listener is not null) return;
            var socket = newListener();
            socket.Listen(16);
            Bound ??= socket.LocalEndPoint;
            listener = socket;
            _ = AcceptAsync(socket);
        }
    }

    public void Stop()
    {
        lock (gate)
        {
            listener?.Dispose();
            listener = null;
            foreach (var s in open) s.Dispose();
            open.Clear();
            OnStopped?.Invoke();
        }
    }

    private async Task AcceptAsync(Socket socket)
    {
        while (true)
        {
            Socket client;
            try { client = await socket.AcceptAsync(); }
            catch (Exception e) when (e is SocketException or ObjectDisposedException) { return; }
            var server = newUpstream();
            try { await server.ConnectAsync(upstream); }
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
