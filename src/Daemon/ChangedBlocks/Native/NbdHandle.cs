using System.Runtime.InteropServices;

namespace Backupd.Daemon.ChangedBlocks.Native;

/// <summary>Owns one struct nbd_handle*; closing it also closes the connection.</summary>
internal sealed class NbdHandle : SafeHandle
{
    public NbdHandle() : base(IntPtr.Zero, ownsHandle: true) { }

    public override bool IsInvalid => handle == IntPtr.Zero;

    protected override bool ReleaseHandle()
    {
        Interop.nbd_close(handle);
        return true;
    }
}
