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

    /// <summary>
    /// The host's capabilities for one kind of domain (any argument may be null: the host's default); the
    /// caller frees the XML (<see cref="OwnedStrings"/>). Its &lt;path&gt; is the emulator libvirt would use.
    /// </summary>
    [LibraryImport(Libraries.Libvirt, StringMarshalling = StringMarshalling.Utf8)]
    internal static unsafe partial byte* virConnectGetDomainCapabilities(ConnectionHandle conn, string? emulatorbin, string? arch, string? machine, string? virttype, uint flags);
}

/// <summary>Liveness of a connection (libvirt-host.h).</summary>
internal static partial class Interop
{
    /// <summary>1 alive, 0 dead (e.g. libvirtd restarted), -1 error.</summary>
    [LibraryImport(Libraries.Libvirt)]
    internal static partial int virConnectIsAlive(ConnectionHandle conn);
}
