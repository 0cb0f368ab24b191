using System.Runtime.InteropServices;

namespace Backupd.Daemon.ChangedBlocks.Native;

/// <summary>libnbd entry points (libnbd.h, libnbd 1.14 on Debian 12: package libnbd0). Only what the dirty-map reader needs.</summary>
internal static unsafe partial class Interop
{
    /// <summary>Versioned soname: the unversioned .so exists only with libnbd-dev installed.</summary>
    internal const string Libnbd = "libnbd.so.0";

    /// <summary>NBD_STATE_DIRTY: in a qemu:dirty-bitmap context, bit 0 set means the extent is dirty.</summary>
    internal const uint NBD_STATE_DIRTY = 1;

    /// <summary>nbd_extent_callback, passed by value: the callback, its user data, and an optional free function.</summary>
    [StructLayout(LayoutKind.Sequential)]
    internal struct NbdExtentCallback
    {
        public delegate* unmanaged<IntPtr, byte*, ulong, uint*, nuint, int*, int> Callback;
        public IntPtr UserData;
        public delegate* unmanaged<IntPtr, void> Free;
    }

    [LibraryImport(Libnbd)]
    internal static partial NbdHandle nbd_create();

    [LibraryImport(Libnbd)]
    internal static partial void nbd_close(IntPtr handle);

    [LibraryImport(Libnbd, StringMarshalling = StringMarshalling.Utf8)]
    internal static partial int nbd_set_handle_name(NbdHandle handle, string name);

    [LibraryImport(Libnbd, StringMarshalling = StringMarshalling.Utf8)]
    internal static partial int nbd_add_meta_context(NbdHandle handle, string name);

    [LibraryImport(Libnbd, StringMarshalling = StringMarshalling.Utf8)]
    internal static partial int nbd_connect_unix(NbdHandle handle, string socketPath);

    [LibraryImport(Libnbd)]
    internal static partial long nbd_get_size(NbdHandle handle);

    /// <summary>1 when the server agreed to the context, 0 when not, -1 on error.</summary>
    [LibraryImport(Libnbd, StringMarshalling = StringMarshalling.Utf8)]
    internal static partial int nbd_can_meta_context(NbdHandle handle, string name);

    [LibraryImport(Libnbd)]
    internal static partial int nbd_block_status(NbdHandle handle, ulong count, ulong offset, NbdExtentCallback callback, uint flags);

    [LibraryImport(Libnbd)]
    internal static partial int nbd_shutdown(NbdHandle handle, uint flags);

    /// <summary>The calling thread's last error message (owned by libnbd, valid until the next call on this thread).</summary>
    [LibraryImport(Libnbd)]
    internal static partial byte* nbd_get_error();

    [LibraryImport(Libnbd)]
    internal static partial int nbd_get_errno();
}
