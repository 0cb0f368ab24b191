using System.Runtime.InteropServices;

namespace Backupd.Daemon.Libvirt.Native;

/// <summary>Starting and removing domains (libvirt-domain.h): restore drills and instant restores (issue 11).</summary>
internal static partial class Interop
{
    /// <summary>virDomainUndefineFlagsValues: also the NVRAM file, and any managed save / snapshot metadata.</summary>
    internal const uint VIR_DOMAIN_UNDEFINE_MANAGED_SAVE = 1, VIR_DOMAIN_UNDEFINE_SNAPSHOTS_METADATA = 2, VIR_DOMAIN_UNDEFINE_NVRAM = 4,
        VIR_DOMAIN_UNDEFINE_CHECKPOINTS_METADATA = 32;

    /// <summary>Defines and starts a transient domain: it disappears when destroyed, so nothing stays defined.</summary>
    [LibraryImport(Libraries.Libvirt, StringMarshalling = StringMarshalling.Utf8)]
    internal static partial DomainHandle virDomainCreateXML(ConnectionHandle conn, string xml, uint flags);

    /// <summary>Starts a defined, shut-off domain.</summary>
    [LibraryImport(Libraries.Libvirt)]
    internal static partial int virDomainCreate(DomainHandle domain);

    /// <summary>Stops the domain at once (power cut).</summary>
    [LibraryImport(Libraries.Libvirt)]
    internal static partial int virDomainDestroy(DomainHandle domain);

    [LibraryImport(Libraries.Libvirt)]
    internal static partial int virDomainUndefineFlags(DomainHandle domain, uint flags);
}
