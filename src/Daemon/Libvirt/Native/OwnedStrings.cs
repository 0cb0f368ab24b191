using System.Runtime.InteropServices;

namespace Backupd.Daemon.Libvirt.Native;

/// <summary>Strings libvirt hands over to the caller (malloc'd char*): copied to managed, then freed with libc free.</summary>
internal static unsafe class OwnedStrings
{
    /// <summary>Returns null for a null pointer (the call failed: read the last error first).</summary>
    public static string? Take(byte* text)
    {
        if (text == null) return null;
        try { return Marshal.PtrToStringUTF8((IntPtr)text); }
        finally { NativeMemory.Free(text); }
    }
}
