using System.ComponentModel;
using System.Runtime.InteropServices;
using Microsoft.Win32.SafeHandles;

namespace Backupd.Storage.Repository;

/// <summary>The few Linux calls .NET does not expose: SEEK_DATA/SEEK_HOLE, hole punching (directory access: RepositoryDirectory).</summary>
internal static partial class Native
{
    private const int SeekData = 3;
    private const int SeekHole = 4;
    private const int FallocKeepSize = 0x01;
    private const int FallocPunchHole = 0x02;
    private const int ENXIO = 6;

    [LibraryImport("libc", EntryPoint = "lseek64", SetLastError = true)]
    private static partial long LSeek(SafeFileHandle fd, long offset, int whence);

    [LibraryImport("libc", EntryPoint = "fallocate64", SetLastError = true)]
    private static partial int FAllocate(SafeFileHandle fd, int mode, long offset, long length);

    /// <summary>Next offset ≥ <paramref name="from"/> holding data, or -1 when only a hole follows.</summary>
    public static long NextData(SafeFileHandle file, long from)
    {
        var r = LSeek(file, from, SeekData);
        if (r >= 0)
        {
            return r;
        }
        var errno = Marshal.GetLastPInvokeError();
        if (errno == ENXIO)
        {
            return -1;
        }
        throw new IOException($"lseek(SEEK_DATA, {from}) failed: {new Win32Exception(errno).Message}");
    }

    /// <summary>Next hole offset ≥ <paramref name="from"/> (end of file counts as a hole).</summary>
    public static long NextHole(SafeFileHandle file, long from)
    {
        var r = LSeek(file, from, SeekHole);
        if (r >= 0)
        {
            return r;
        }
        throw new IOException($"lseek(SEEK_HOLE, {from}) failed: {new Win32Exception(Marshal.GetLastPInvokeError()).Message}");
    }

    /// <summary>Deallocates a range (reads as zeros). False when the file system cannot punch holes.</summary>
    public static bool PunchHole(SafeFileHandle file, long offset, long length) =>
        FAllocate(file, FallocPunchHole | FallocKeepSize, offset, length) == 0;
}
