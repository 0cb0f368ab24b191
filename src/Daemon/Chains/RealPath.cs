using System.Runtime.InteropServices;

namespace Backupd.Daemon.Chains;

/// <summary>realpath(3): two names for one file (a symlink, a bind path, "..") must compare equal when deciding who uses it.</summary>
internal static unsafe partial class RealPath
{
    [LibraryImport("libc", EntryPoint = "realpath", StringMarshalling = StringMarshalling.Utf8)]
    private static partial byte* NativeRealPath(string path, byte* resolved);

    /// <summary>The canonical path, or the absolute path as given when it does not exist (a missing layer still has a name).</summary>
    public static string Of(string path)
    {
        var full = Path.GetFullPath(path);
        var raw = NativeRealPath(full, null);
        if (raw == null) return full;
        try { return Marshal.PtrToStringUTF8((IntPtr)raw) ?? full; }
        finally { NativeMemory.Free(raw); }
    }
}
