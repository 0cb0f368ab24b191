using System.Runtime.InteropServices;

namespace Backupd.Daemon.Libvirt.Native;

/// <summary>
/// Owns one reference to a virDomainPtr. It also holds a reference on its connection
/// (DangerousAddRef), so closing the <see cref="LibvirtConnection"/> while a domain handle is
/// alive cannot free the virConnectPtr underneath it.
/// </summary>
internal sealed class DomainHandle : SafeHandle
{
    private ConnectionHandle? connection;

    public DomainHandle() : base(IntPtr.Zero, ownsHandle: true) { }

    public override bool IsInvalid => handle == IntPtr.Zero;

    /// <summary>Takes ownership of a raw pointer returned by libvirt (e.g. one entry of virConnectListAllDomains).</summary>
    internal static DomainHandle FromOwned(IntPtr raw, ConnectionHandle owner)
    {
        var h = new DomainHandle();
        h.SetHandle(raw);
        h.KeepConnectionAlive(owner);
        return h;
    }

    /// <summary>Call right after a successful lookup: the domain now keeps <paramref name="owner"/> open.</summary>
    internal void KeepConnectionAlive(ConnectionHandle owner)
    {
        var added = false;
        owner.DangerousAddRef(ref added);
        if (added) connection = owner;
    }

    protected override bool ReleaseHandle()
    {
        var ok = Interop.virDomainFree(handle) == 0;
        connection?.DangerousRelease();
        connection = null;
        return ok;
    }
}

/// <summary>Owns a virDomainSnapshotPtr (returned even with NO_METADATA; must be freed).</summary>
internal sealed class SnapshotHandle : SafeHandle
{
    public SnapshotHandle() : base(IntPtr.Zero, ownsHandle: true) { }

    public override bool IsInvalid => handle == IntPtr.Zero;

    protected override bool ReleaseHandle() => Interop.virDomainSnapshotFree(handle) == 0;
}
