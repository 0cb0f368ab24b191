using System.Runtime.InteropServices;

namespace Backupd.Daemon.Libvirt.Native;

/// <summary>Owns one reference to a virConnectPtr.</summary>
internal sealed class ConnectionHandle : SafeHandle
{
    public ConnectionHandle() : base(IntPtr.Zero, ownsHandle: true) { }

    public override bool IsInvalid => handle == IntPtr.Zero;

    protected override bool ReleaseHandle() => Interop.virConnectClose(handle) >= 0;
}
