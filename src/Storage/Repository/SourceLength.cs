using Microsoft.Win32.SafeHandles;

namespace Backupd.Storage.Repository;

/// <summary>
/// The size of a backup source as the device knows it. A block device (LVM logical volume, LUN, zvol,
/// loop device) has an inode size of 0, so <see cref="RandomAccess.GetLength"/> alone would store it as
/// 0 bytes; its size comes from the device (BLKGETSIZE64).
/// </summary>
public static class SourceLength
{
    /// <summary>Bytes of the open source: the device size of a block device, else the file length.</summary>
    public static long Of(SafeFileHandle source, string path) =>
        Native.IsBlockDevice(source, path) ? Native.BlockDeviceSize(source, path) : RandomAccess.GetLength(source);

    /// <summary>Opens <paramref name="path"/> read-only (shared) for <see cref="Of(SafeFileHandle, string)"/>.</summary>
    public static long Of(string path)
    {
        using var source = File.OpenHandle(path, FileMode.Open, FileAccess.Read, FileShare.ReadWrite);
        return Of(source, path);
    }

    /// <summary>What <paramref name="path"/> is, after symbolic links (e.g. /dev/VG/LV).</summary>
    public static SourceKind KindOf(string path)
    {
        using var source = File.OpenHandle(path, FileMode.Open, FileAccess.Read, FileShare.ReadWrite);
        return Native.IsBlockDevice(source, path) ? SourceKind.BlockDevice : Native.IsRegularFile(source, path) ? SourceKind.RegularFile : SourceKind.Other;
    }
}

/// <summary>The kinds of source a backup distinguishes: only regular files and block devices have a size to copy.</summary>
public enum SourceKind
{
    RegularFile,
    BlockDevice,
    /// <summary>A character device, pipe or socket.</summary>
    Other,
}
