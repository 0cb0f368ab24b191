using System.Runtime.InteropServices;

namespace Backupd.Daemon.Libvirt.Native;

/// <summary>virterror.h: the per-thread last error and the global error handler.</summary>
internal static unsafe partial class Interop
{
    /// <summary>Leading fields of virError; the rest are deprecated or unused by us.</summary>
    [StructLayout(LayoutKind.Sequential)]
    internal struct VirError
    {
        public int Code;
        public int Domain;
        public byte* Message;
        public int Level;
    }

    /// <summary>Returns a pointer to this thread's last error (owned by libvirt) or null.</summary>
    [LibraryImport(Libraries.Libvirt)]
    internal static partial VirError* virGetLastError();

    [LibraryImport(Libraries.Libvirt)]
    internal static partial void virResetLastError();

    [LibraryImport(Libraries.Libvirt)]
    internal static partial void virSetErrorFunc(void* userData, delegate* unmanaged<void*, VirError*, void> handler);
}
