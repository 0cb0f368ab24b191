using System.Runtime.InteropServices;

namespace Backupd.Daemon.Libvirt.Native;

/// <summary>virDomainSnapshot* entry points (libvirt-domain-snapshot.h).</summary>
internal static partial class Interop
{
    /// <summary>virDomainSnapshotCreateFlags.</summary>
    internal const uint VIR_DOMAIN_SNAPSHOT_CREATE_NO_METADATA = 4,
        VIR_DOMAIN_SNAPSHOT_CREATE_DISK_ONLY = 16,
        VIR_DOMAIN_SNAPSHOT_CREATE_REUSE_EXT = 32,
        VIR_DOMAIN_SNAPSHOT_CREATE_QUIESCE = 64,
        VIR_DOMAIN_SNAPSHOT_CREATE_ATOMIC = 128;

    [LibraryImport(Libraries.Libvirt, StringMarshalling = StringMarshalling.Utf8)]
    internal static partial SnapshotHandle virDomainSnapshotCreateXML(DomainHandle domain, string xml, uint flags);

    [LibraryImport(Libraries.Libvirt)]
    internal static partial int virDomainSnapshotFree(IntPtr snapshot);
}
