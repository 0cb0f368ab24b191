using System.Runtime.InteropServices;

namespace Backupd.Storage.Repository;

/// <summary>
/// The Linux calls behind <see cref="RepositoryDirectory"/>: openat2 (through syscall(2): glibc has no wrapper),
/// the *at family relative to directory descriptors, statx and getdents64. x86-64 numbers and layouts.
/// </summary>
internal static partial class BeneathNative
{
    public const int EPERM = 1;
    public const int ENOENT = 2;
    public const int EEXIST = 17;
    public const int ENOTDIR = 20;
    public const int EISDIR = 21;
    public const int ELOOP = 40;
    public const int EXDEV = 18;
    public const int ENOSYS = 38;
    public const int EINVAL = 22;

    public const int ORdOnly = 0;
    public const int OWrOnly = 1;
    public const int ORdWr = 2;
    public const int OCreat = 0x40;
    public const int OExcl = 0x80;
    public const int OTrunc = 0x200;
    public const int ONonBlock = 0x800;
    public const int ODirect = 0x4000;
    public const int ODirectory = 0x10000;
    public const int ONoFollow = 0x20000;
    public const int OCloExec = 0x80000;
    public const int OPath = 0x200000;

    public const ulong ResolveNoMagicLinks = 0x02;
    public const ulong ResolveNoSymlinks = 0x04;
    public const ulong ResolveBeneath = 0x08;

    public const int AtRemoveDir = 0x200;
    public const int AtSymlinkNoFollow = 0x100;
    public const int AtEmptyPath = 0x1000;
    public const uint StatxType = 0x1;
    public const uint StatxNlink = 0x4;

    public const ushort SIfMt = 0xF000;
    public const ushort SIfReg = 0x8000;
    public const ushort SIfDir = 0x4000;
    public const ushort SIfLnk = 0xA000;

    public const byte DtDir = 4;
    public const byte DtReg = 8;
    public const byte DtLnk = 10;
    public const byte DtUnknown = 0;

    private const long SysOpenat2 = 437; // x86-64

    [StructLayout(LayoutKind.Sequential)]
    public struct OpenHow
    {
        public ulong Flags;
        public ulong Mode;
        public ulong Resolve;
    }

    [LibraryImport("libc", EntryPoint = "syscall", SetLastError = true)]
    private static partial long Syscall(long number, int dirfd, [MarshalAs(UnmanagedType.LPUTF8Str)] string path, ref OpenHow how, nuint size);

    public static int Openat2(int dirfd, string path, ref OpenHow how) =>
        (int)Syscall(SysOpenat2, dirfd, path, ref how, (nuint)Marshal.SizeOf<OpenHow>());

    [LibraryImport("libc", EntryPoint = "openat", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    public static partial int Openat(int dirfd, string path, int flags, uint mode);

    [LibraryImport("libc", EntryPoint = "mkdirat", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    public static partial int Mkdirat(int dirfd, string path, uint mode);

    [LibraryImport("libc", EntryPoint = "unlinkat", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    public static partial int Unlinkat(int dirfd, string path, int flags);

    [LibraryImport("libc", EntryPoint = "renameat", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    public static partial int Renameat(int olddirfd, string oldpath, int newdirfd, string newpath);

    public const uint RenameNoReplace = 1; // RENAME_NOREPLACE: a copy repository never overwrites a published file

    [LibraryImport("libc", EntryPoint = "renameat2", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    public static partial int Renameat2(int olddirfd, string oldpath, int newdirfd, string newpath, uint flags);

    [LibraryImport("libc", EntryPoint = "statx", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    private static partial int Statx(int dirfd, string path, int flags, uint mask, Span<byte> buffer);

    [LibraryImport("libc", EntryPoint = "getdents64", SetLastError = true)]
    public static partial nint Getdents64(int fd, Span<byte> buffer, nuint count);

    [LibraryImport("libc", EntryPoint = "fcntl", SetLastError = true)]
    public static partial int Fcntl(int fd, int cmd, int arg);

    [LibraryImport("libc", EntryPoint = "fsync", SetLastError = true)]
    public static partial int Fsync(int fd);

    [LibraryImport("libc", EntryPoint = "close", SetLastError = true)]
    public static partial int Close(int fd);

    /// <summary>Type bits (S_IFMT) and link count of a name relative to dirfd, links not followed; errno on failure.</summary>
    public static int Stat(int dirfd, string name, int flags, out ushort mode, out uint links)
    {
        Span<byte> buffer = stackalloc byte[256]; // struct statx: stx_nlink at 16, stx_mode at 28
        var r = Statx(dirfd, name, flags | AtSymlinkNoFollow, StatxType | StatxNlink, buffer);
        mode = (ushort)(BitConverter.ToUInt16(buffer[28..]) & SIfMt);
        links = BitConverter.ToUInt32(buffer[16..]);
        return r == 0 ? 0 : Marshal.GetLastPInvokeError();
    }
}
