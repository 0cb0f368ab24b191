using System.Net.Sockets;

namespace Backupd.Integration.Fixtures;

/// <summary>
/// A Unix-socket relay in front of libvirtd's socket, for a client that connects with
/// <c>qemu+unix:///system?socket=PATH</c>. <see cref="Stop"/> is what the client sees of a libvirtd
/// restart (every connection closes, new ones are refused) without stopping the shared libvirtd;
/// <see cref="Start"/> brings it back.
/// </summary>
internal sealed class LibvirtSocketProxy : IDisposable
{
    private const string Upstream = "/run/libvirt/libvirt-sock";
    private readonly SocketRelay relay;

    public LibvirtSocketProxy()
    {
        relay = new SocketRelay(
            () =>
            {
                File.Delete(Path);
                var socket = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
                socket.Bind(new UnixDomainSocketEndPoint(Path));
                return socket;
            },
            () => new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified),
            new UnixDomainSocketEndPoint(Upstream))
        { OnStopped = () => File.Delete(Path) };
    }

    public string Path { get; } = $"/tmp/bkd-lv-{Guid.NewGuid():N}"[..20] + ".sock";
    public string Uri => $"qemu+unix:///system?socket={Path}";

    public void Start() => relay.Start();

    /// <summary>Closes the listener and every relayed connection (the client reads EOF), removes the socket file.</summary>
    public void Stop() => relay.Stop();

    public void Dispose() => relay.Dispose();
}
