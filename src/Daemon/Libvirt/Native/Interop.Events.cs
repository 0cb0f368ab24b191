using System.Runtime.InteropServices;

namespace Backupd.Daemon.Libvirt.Native;

/// <summary>The default event loop and domain event registration (libvirt-event.h, libvirt-domain.h).</summary>
internal static unsafe partial class Interop
{
    /// <summary>virDomainEventID: VIR_DOMAIN_EVENT_ID_BLOCK_JOB_2 reports the disk by target name.</summary>
    internal const int VIR_DOMAIN_EVENT_ID_BLOCK_JOB_2 = 16;

    [LibraryImport(Libraries.Libvirt)]
    internal static partial int virEventRegisterDefaultImpl();

    [LibraryImport(Libraries.Libvirt)]
    internal static partial int virEventRunDefaultImpl();

    [LibraryImport(Libraries.Libvirt)]
    internal static partial int virEventAddTimeout(int frequencyMs, delegate* unmanaged<int, void*, void> callback, void* opaque, delegate* unmanaged<void*, void> free);

    [LibraryImport(Libraries.Libvirt)]
    internal static partial int virEventRemoveTimeout(int timer);

    /// <summary>
    /// The callback's real signature depends on the event id; for BLOCK_JOB_2 it is
    /// (conn, dom, const char* disk, int type, int status, void* opaque).
    /// </summary>
    [LibraryImport(Libraries.Libvirt)]
    internal static partial int virConnectDomainEventRegisterAny(ConnectionHandle conn, IntPtr domain, int eventId, void* callback, void* opaque, delegate* unmanaged<void*, void> free);

    [LibraryImport(Libraries.Libvirt)]
    internal static partial int virConnectDomainEventDeregisterAny(ConnectionHandle conn, int callbackId);
}
