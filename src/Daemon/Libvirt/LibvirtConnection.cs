using Backupd.Daemon.Libvirt.Native;

namespace Backupd.Daemon.Libvirt;

/// <summary>A connection to libvirtd. Thread-safe; share one per URI.</summary>
public sealed class LibvirtConnection : IDisposable
{
    internal ConnectionHandle Handle { get; }
    public string Uri { get; }

    private LibvirtConnection(ConnectionHandle handle, string uri)
    {
        Handle = handle;
        Uri = uri;
    }

    public static LibvirtConnection Open(string uri)
    {
        LibvirtErrors.SilenceDefaultPrinting();
        var handle = LibvirtErrors.Check(Interop.virConnectOpen(uri));
        return new LibvirtConnection(handle, uri);
    }

    /// <summary>libvirt library version as major.minor.release.</summary>
    public Version LibraryVersion
    {
        get
        {
            LibvirtErrors.Check(Interop.virConnectGetLibVersion(Handle, out var raw));
            var v = raw.Value;
            return new Version((int)(v / 1_000_000), (int)(v / 1000 % 1000), (int)(v % 1000));
        }
    }

    public void Dispose() => Handle.Dispose();
}
