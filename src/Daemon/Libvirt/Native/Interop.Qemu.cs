using System.Runtime.InteropServices;

namespace Backupd.Daemon.Libvirt.Native;

/// <summary>libvirt-qemu.so.0: guest agent pass-through.</summary>
internal static unsafe partial class Interop
{
    /// <summary>Returns the agent's JSON reply as an owned string (free with NativeMemory.Free), or null on error.</summary>
    [LibraryImport(Libraries.LibvirtQemu, StringMarshalling = StringMarshalling.Utf8)]
    internal static partial byte* virDomainQemuAgentCommand(DomainHandle domain, string command, int timeoutSeconds, uint flags);
}
