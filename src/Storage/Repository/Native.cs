using System.ComponentModel;
using System.Runtime.InteropServices;
using Microsoft.Win32.SafeHandles;

namespace Backupd.Storage.Repository;

/// <summary>The few Linux calls .NET does not expose: SEEK_DATA/SEEK_HOLE, hole punching, block device type and size (directory access: RepositoryDirectory).</summary>
internal static partial class Native
{
    private const int SeekData = 3;
    private const int SeekHole = 4;
    private const int FallocKeepSize = 0x01;
    private const int FallocPunchHole = 0x02;
    private const int ENXIO = 6;
    private const int AtEmptyPath = 0x1000;
    private const uint StatxType = 0x1;
    private const int StatxModeOffset = 28; // struct statx: u32 mask, u32 blksize, u64 attributes, u32 nlink, uid, gid; u16 mode
    private const int FileTypeMask = 0xF000; // S_IFMT
    private const int BlockDeviceType = 0x6000; // S_IFBLK
    private const int RegularFileType = 0x8000; // S_IFREG
    private const nuint BlkGetSize64 = 0x80081272; // _IOR(0x12, 114, size_t)

    [LibraryImport("libc", EntryPoint = "lseek64", SetLastError = true)]
    private static partial long LSeek(SafeFileHandle fd, long offset, int whence);

    [LibraryImport("libc", EntryPoint = "fallocate64", SetLastError = true)]
    private static partial int FAllocate(SafeFileHandle fd, int mode, long offset, long length);

    // statx rather than fstat: its struct has the same layout on every architecture.
    [LibraryImport("libc", EntryPoint = "statx", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    private static unsafe partial int Statx(SafeFileHandle dirfd, string path, int flags, uint mask, byte* buffer);

    [LibraryImport("libc", EntryPoint = "ioctl", SetLastError = true)]
    private static partial int IoctlU64(SafeFileHandle fd, nuint request, out ulong value);

    [LibraryImport("libc", EntryPoint = "ioctl", SetLastError = true)]
    private static partial int IoctlCloneRange(SafeFileHandle fd, nuint request, in FileCloneRange range);

    /// <summary>struct file_clone_range of FICLONERANGE.</summary>
    [StructLayout(LayoutKind.Sequential)]
    private readonly record struct FileCloneRange(long SourceFd, ulong SourceOffset, ulong Length, ulong DestinationOffset);

    private const nuint FiCloneRange = 0x4020940D; // _IOW(0x94, 13, struct file_clone_range)

    [LibraryImport("libc", EntryPoint = "sync_file_range", SetLastError = true)]
    private static partial int SyncFileRange(SafeFileHandle fd, long offset, long length, uint flags);

    private const int EXDEV = 18;
    private const int EINVAL = 22;
    private const int ENOSYS = 38;
    private const int EOPNOTSUPP = 95;
    private const int EBADF = 9;
    private const int ENOTTY = 25;
    private const int EPERM = 1;
    private const uint SyncFileRangeWaitBefore = 1;
    private const uint SyncFileRangeWrite = 2;
    private const uint SyncFileRangeWaitAfter = 4;

    /// <summary>True when the open file is a block device (S_ISBLK): its size is not its inode's st_size.</summary>
    public static bool IsBlockDevice(SafeFileHandle file, string path) => FileType(file, path) == BlockDeviceType;

    /// <summary>True when the open file is a regular file (S_ISREG).</summary>
    public static bool IsRegularFile(SafeFileHandle file, string path) => FileType(file, path) == RegularFileType;

    /// <summary>The S_IFMT bits of the open file's mode.</summary>
    private static unsafe int FileType(SafeFileHandle file, string path)
    {
        var buffer = stackalloc byte[256];
        if (Statx(file, "", AtEmptyPath, StatxType, buffer) != 0)
        {
            throw new IOException($"statx of {path} failed: {new Win32Exception(Marshal.GetLastPInvokeError()).Message}");
        }
        return *(ushort*)(buffer + StatxModeOffset) & FileTypeMask;
    }

    /// <summary>A block device's size in bytes (ioctl BLKGETSIZE64).</summary>
    public static long BlockDeviceSize(SafeFileHandle device, string path)
    {
        if (IoctlU64(device, BlkGetSize64, out var size) != 0)
        {
            throw new IOException($"ioctl(BLKGETSIZE64) on {path} failed: {new Win32Exception(Marshal.GetLastPInvokeError()).Message}");
        }
        return checked((long)size);
    }

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

    /// <summary>
    /// Makes [offset, offset+length) of <paramref name="to"/> share the extents of the same range of <paramref name="from"/>
    /// (FICLONERANGE: a reflink on XFS and btrfs; no data is copied, read or written). Offsets and length must be multiples
    /// of the file system's block size, except a range ending at the end of <paramref name="from"/>.
    /// </summary>
    /// <returns><see cref="CloneResult.Cloned"/>; <see cref="CloneResult.Unsupported"/> when this pair of files can never be cloned
    /// (ext4, tmpfs, another file system); <see cref="CloneResult.Misaligned"/> when only this range cannot be (write it instead).</returns>
    public static CloneResult CloneRange(SafeFileHandle from, SafeFileHandle to, long offset, long length)
    {
        var added = false;
        from.DangerousAddRef(ref added);
        try
        {
            var range = new FileCloneRange(from.DangerousGetHandle(), (ulong)offset, (ulong)length, (ulong)offset);
            if (IoctlCloneRange(to, FiCloneRange, in range) == 0)
            {
                return CloneResult.Cloned;
            }
        }
        finally
        {
            if (added)
            {
                from.DangerousRelease();
            }
        }
        var errno = Marshal.GetLastPInvokeError();
        return errno switch
        {
            EINVAL => CloneResult.Misaligned,
            EXDEV or EOPNOTSUPP or ENOTTY or ENOSYS or EBADF or EPERM => CloneResult.Unsupported,
            _ => throw new IOException($"ioctl(FICLONERANGE) at {offset} failed: {new Win32Exception(errno).Message}"),
        };
    }

    /// <summary>Starts write-back of a range (sync_file_range WRITE); with <paramref name="wait"/> also waits for it. Advisory: fsync still decides durability.</summary>
    public static void StartWriteBack(SafeFileHandle file, long offset, long length, bool wait) =>
        _ = SyncFileRange(file, offset, length, wait ? SyncFileRangeWaitBefore | SyncFileRangeWrite | SyncFileRangeWaitAfter : SyncFileRangeWrite);

    /// <summary>Deallocates a range (reads as zeros). False when the file system cannot punch holes.</summary>
    public static bool PunchHole(SafeFileHandle file, long offset, long length) =>
        FAllocate(file, FallocPunchHole | FallocKeepSize, offset, length) == 0;
}

/// <summary>What <see cref="Native.CloneRange"/> did.</summary>
internal enum CloneResult
{
    Cloned,
    Unsupported,
    Misaligned,
}
