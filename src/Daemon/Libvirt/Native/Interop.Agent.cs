using System.Runtime.InteropServices;

namespace Backupd.Daemon.Libvirt.Native;

/// <summary>Guest agent calls of libvirt.so (issue 11): a bound on every agent call, and thawing.</summary>
internal static partial class Interop
{
    /// <summary>virDomainAgentResponseTimeoutValues: BLOCK=-2 (wait forever), DEFAULT=-1, NOWAIT=0; else seconds.</summary>
    internal const int VIR_DOMAIN_AGENT_RESPONSE_TIMEOUT_BLOCK = -2;

    [LibraryImport(Libraries.Libvirt)]
    internal static partial int virDomainAgentSetResponseTimeout(DomainHandle domain, int timeoutSeconds, uint flags);

    /// <summary>Thaws every frozen file system (mountpoints NULL, count 0); returns how many were thawed, -1 on error.</summary>
    [LibraryImport(Libraries.Libvirt)]
    internal static partial int virDomainFSThaw(DomainHandle domain, IntPtr mountpoints, uint mountpointCount, uint flags);
}
