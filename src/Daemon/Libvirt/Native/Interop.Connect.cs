using System.Runtime.InteropServices;

namespace Backupd.Daemon.Libvirt.Native;

/// <summary>virConnect* entry points (libvirt-host.h).</summary>
internal static partial class Interop
{
    [LibraryImport(Libraries.Libvirt, StringMarshalling = StringMarshalling.Utf8)]
    internal static partial ConnectionHandle virConnectOpen(string? name);

    /// <summary>Returns the remaining reference count (not success), or -1.</summary>
    [LibraryImport(Libraries.Libvirt)]
    internal static partial int virConnectClose(IntPtr conn);

    [LibraryImport(Libraries.Libvirt)]
    internal static partial int virConnectGetLibVersion(ConnectionHandle conn, out CULong libVer);
}

/// <summary>Liveness of a connection (libvirt-host.h).</summary>
internal static partial class Interop
{
    /// <summary>1 alive, 0 dead (e.g. libvirtd restarted), -1 error.</summary>
    [LibraryImport(Libraries.Libvirt)]
    internal static partial int virConnectIsAlive(ConnectionHandle conn);
}
