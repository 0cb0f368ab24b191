using System.Net;
using System.Net.Sockets;
using Npgsql;

namespace Backupd.Integration.Fixtures;

/// <summary>
/// A TCP relay on 127.0.0.1 (a free port) in front of the test PostgreSQL server, so a test can cut backupd off
/// its catalog (<see cref="Stop"/>: open connections drop, new ones are refused) and bring it back
/// (<see cref="Start"/>) without stopping the PostgreSQL server other tests share.
/// </summary>
public sealed class PostgresProxy : IDisposable
{
    private readonly SocketRelay relay;
    private readonly string target;

    /// <param name="connectionString">The real database's connection string (TCP host or a Unix socket directory).</param>
    public PostgresProxy(string connectionString)
    {
        target = connectionString;
        var b = new NpgsqlConnectionStringBuilder(connectionString);
        var host = b.Host ?? "127.0.0.1";
        var unix = host.StartsWith('/');
        EndPoint upstream = unix
            ? new UnixDomainSocketEndPoint(Path.Combine(host, $".s.PGSQL.{b.Port}"))
            : new IPEndPoint(Dns.GetHostAddresses(host).First(a => a.AddressFamily is AddressFamily.InterNetwork or AddressFamily.InterNetworkV6), b.Port);
        relay = new SocketRelay(
            () =>
            {
                var socket = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
                socket.SetSocketOption(SocketOptionLevel.Socket, SocketOptionName.ReuseAddress, true);
                socket.Bind(relayEndPoint ?? new IPEndPoint(IPAddress.Loopback, 0));
                return socket;
            },
            () => unix ? new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified) : new Socket(upstream.AddressFamily, SocketType.Stream, ProtocolType.Tcp),
            upstream);
        relay.Start();
        relayEndPoint = (IPEndPoint)relay.Bound!;
    }

    private readonly IPEndPoint? relayEndPoint;

    public int Port => relayEndPoint!.Port;

    /// <summary>The same database through the relay.</summary>
    public string ConnectionString => new NpgsqlConnectionStringBuilder(target) { Host = "127.0.0.1", Port = Port }.ConnectionString;

    public void Start() => relay.Start();

    public void Stop() => relay.Stop();

    public void Dispose() => relay.Dispose();
}
