using System.Runtime.InteropServices;

namespace Backupd.Daemon.Libvirt.Native;

/// <summary>virDomain* entry points for lookup, state and XML (libvirt-domain.h).</summary>
internal static unsafe partial class Interop
{
    /// <summary>virConnectListAllDomainsFlags.</summary>
    internal const uint VIR_CONNECT_LIST_DOMAINS_ACTIVE = 1, VIR_CONNECT_LIST_DOMAINS_INACTIVE = 2;

    /// <summary>virDomainXMLFlags.</summary>
    internal const uint VIR_DOMAIN_XML_SECURE = 1, VIR_DOMAIN_XML_INACTIVE = 2;

    /// <summary>VIR_UUID_STRING_BUFLEN: 36 characters plus the terminator.</summary>
    internal const int VIR_UUID_STRING_BUFLEN = 37;

    [LibraryImport(Libraries.Libvirt, StringMarshalling = StringMarshalling.Utf8)]
    internal static partial DomainHandle virDomainLookupByName(ConnectionHandle conn, string name);

    [LibraryImport(Libraries.Libvirt, StringMarshalling = StringMarshalling.Utf8)]
    internal static partial DomainHandle virDomainLookupByUUIDString(ConnectionHandle conn, string uuid);

    /// <summary>Fills <paramref name="domains"/> with a malloc'd array of owned virDomainPtr; returns the count or -1.</summary>
    [LibraryImport(Libraries.Libvirt)]
    internal static partial int virConnectListAllDomains(ConnectionHandle conn, out IntPtr* domains, uint flags);

    [LibraryImport(Libraries.Libvirt)]
    internal static partial int virDomainFree(IntPtr domain);

    [LibraryImport(Libraries.Libvirt)]
    internal static partial int virDomainGetState(DomainHandle domain, out int state, out int reason, uint flags);

    /// <summary>Returns (unsigned)-1 for an inactive domain.</summary>
    [LibraryImport(Libraries.Libvirt)]
    internal static partial uint virDomainGetID(DomainHandle domain);

    /// <summary>Borrowed pointer owned by the domain object: never free it.</summary>
    [LibraryImport(Libraries.Libvirt)]
    internal static partial byte* virDomainGetName(DomainHandle domain);

    [LibraryImport(Libraries.Libvirt)]
    internal static partial int virDomainGetUUIDString(DomainHandle domain, byte* buf);

    [LibraryImport(Libraries.Libvirt)]
    internal static partial int virDomainIsPersistent(DomainHandle domain);

    /// <summary>Owned string: free with libc free (NativeMemory.Free).</summary>
    [LibraryImport(Libraries.Libvirt)]
    internal static partial byte* virDomainGetXMLDesc(DomainHandle domain, uint flags);

    [LibraryImport(Libraries.Libvirt, StringMarshalling = StringMarshalling.Utf8)]
    internal static partial DomainHandle virDomainDefineXML(ConnectionHandle conn, string xml);

    /// <summary>virDomainBlockInfo: unsigned long long capacity, allocation, physical (24 bytes).</summary>
    [StructLayout(LayoutKind.Sequential)]
    internal struct VirDomainBlockInfo
    {
        public ulong Capacity;
        public ulong Allocation;
        public ulong Physical;
    }

    /// <summary>Sizes of one disk's active image (target name or source path); 0 on success, -1 on error.</summary>
    [LibraryImport(Libraries.Libvirt, StringMarshalling = StringMarshalling.Utf8)]
    internal static partial int virDomainGetBlockInfo(DomainHandle domain, string disk, out VirDomainBlockInfo info, uint flags);
}

internal static unsafe partial class Interop
{
    /// <summary>Same entry point on a borrowed raw pointer: used inside event callbacks, where no SafeHandle exists.</summary>
    [LibraryImport(Libraries.Libvirt, EntryPoint = "virDomainGetUUIDString")]
    internal static partial int virDomainGetUUIDStringRaw(IntPtr domain, byte* buf);
}
