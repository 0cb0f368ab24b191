using System.Runtime.InteropServices;
using Microsoft.Win32.SafeHandles;

namespace Backupd.Policies.Loading;

/// <summary>Why <see cref="RegularFile.ReadAll"/> refused a file.</summary>
public enum FileRefusal
{
    NotFound,
    NotRegular,
    TooLarge,
    Unreadable,
}

/// <summary>A configuration or policy file that was not read; <see cref="Problem"/> says why, without the path.</summary>
public sealed class FileRefusedException : IOException
{
    public FileRefusedException(string path, FileRefusal refusal, string problem, long size = 0) : base($"{path}: {problem}")
    {
        FilePath = path;
        Refusal = refusal;
        Problem = problem;
        Size = size;
    }

    public FileRefusedException() { }
    public FileRefusedException(string message) : base(message) { }
    public FileRefusedException(string message, Exception inner) : base(message, inner) { }

    public string FilePath { get; } = "";
    public FileRefusal Refusal { get; }
    public string Problem { get; } = "";
    /// <summary>The size found, for <see cref="FileRefusal.TooLarge"/>.</summary>
    public long Size { get; }
}

/// <summary>
/// Reads a small text file that someone else may have replaced with something that is not one: only a
/// regular file (symlinks followed) is read, so a FIFO cannot block the reader, /dev/zero cannot fill
/// memory and a directory gets a clear message. The target is checked before it is opened (opening some
/// devices has effects), opened with O_NONBLOCK (a FIFO swapped in meanwhile does not block the open),
/// checked again on the open handle, and read to at most the limit plus one byte, so a file that grows
/// while it is read is refused too.
/// </summary>
public static partial class RegularFile
{
    public static byte[] ReadAll(string path, int maxBytes)
    {
        var before = Stat(path, handle: null);
        Refuse(path, before, maxBytes);
        var fd = Open(path, OpenFlags);
        if (fd < 0) throw Failure(path, Marshal.GetLastPInvokeError());
        using var handle = new SafeFileHandle(fd, ownsHandle: true);
        var opened = Stat("", handle);
        Refuse(path, opened, maxBytes);

        var buffer = new byte[Math.Min(opened.Size, maxBytes) + 1];
        var length = 0;
        while (true)
        {
            if (length == buffer.Length)
            {
                if (length > maxBytes) throw Grew(path, maxBytes);
                Array.Resize(ref buffer, Math.Min(buffer.Length * 2, maxBytes + 1));
            }
            var read = RandomAccess.Read(handle, buffer.AsSpan(length), length);
            if (read == 0) break;
            length += read;
        }
        if (length > maxBytes) throw Grew(path, maxBytes);
        return length == buffer.Length ? buffer : buffer[..length];
    }

    /// <summary>Reads UTF-8 text (a byte order mark is dropped), within the same limits.</summary>
    public static string ReadAllText(string path, int maxBytes)
    {
        var bytes = ReadAll(path, maxBytes);
        var start = bytes.AsSpan().StartsWith((ReadOnlySpan<byte>)[0xEF, 0xBB, 0xBF]) ? 3 : 0;
        return System.Text.Encoding.UTF8.GetString(bytes, start, bytes.Length - start);
    }

    private static void Refuse(string path, FileStatus status, int maxBytes)
    {
        var kind = status.Mode & S_IFMT;
        if (kind != S_IFREG)
        {
            var what = kind switch
            {
                S_IFDIR => "a directory",
                S_IFIFO => "a FIFO (named pipe)",
                S_IFSOCK => "a socket",
                S_IFCHR => "a character device",
                S_IFBLK => "a block device",
                _ => "not a regular file",
            };
            throw new FileRefusedException(path, FileRefusal.NotRegular, $"is {what}, not a regular file; only regular files are read");
        }
        if (status.Size > maxBytes)
            throw new FileRefusedException(path, FileRefusal.TooLarge, $"file is {status.Size} bytes; at most {maxBytes} bytes are read", status.Size);
    }

    private static FileRefusedException Grew(string path, int maxBytes) =>
        new(path, FileRefusal.TooLarge, $"file grew past {maxBytes} bytes while it was read; at most {maxBytes} bytes are read", maxBytes + 1L);

    private static FileRefusedException Failure(string path, int errno) => errno switch
    {
        ENOENT or ENOTDIR => new FileRefusedException(path, FileRefusal.NotFound, "file not found"),
        ENXIO => new FileRefusedException(path, FileRefusal.NotRegular, "is a socket or a device without a driver, not a regular file; only regular files are read"),
        _ => new FileRefusedException(path, FileRefusal.Unreadable, $"cannot read: {Marshal.GetPInvokeErrorMessage(errno)}"),
    };

    private readonly record struct FileStatus(uint Mode, long Size);

    /// <summary>statx by path (following symlinks) or, with <paramref name="handle"/>, of the open file. statx's layout is the same on every Linux architecture.</summary>
    private static unsafe FileStatus Stat(string path, SafeFileHandle? handle)
    {
        var buffer = stackalloc byte[StatxSize];
        var result = handle is null
            ? Statx(AT_FDCWD, path, 0, STATX_TYPE | STATX_SIZE, buffer)
            : Statx((int)handle.DangerousGetHandle(), "", AT_EMPTY_PATH, STATX_TYPE | STATX_SIZE, buffer);
        if (result != 0) throw Failure(path, Marshal.GetLastPInvokeError());
        return new FileStatus(*(ushort*)(buffer + StatxModeOffset), (long)*(ulong*)(buffer + StatxSizeOffset));
    }

    private const int OpenFlags = O_RDONLY | O_NONBLOCK | O_NOCTTY | O_CLOEXEC;
    private const int O_RDONLY = 0, O_NOCTTY = 0x100, O_NONBLOCK = 0x800, O_CLOEXEC = 0x80000;
    private const int AT_FDCWD = -100, AT_EMPTY_PATH = 0x1000;
    private const uint STATX_TYPE = 0x1, STATX_SIZE = 0x200;
    private const uint S_IFMT = 0xF000, S_IFREG = 0x8000, S_IFDIR = 0x4000, S_IFIFO = 0x1000, S_IFSOCK = 0xC000, S_IFCHR = 0x2000, S_IFBLK = 0x6000;
    private const int ENOENT = 2, ENXIO = 6, ENOTDIR = 20;
    private const int StatxSize = 256, StatxModeOffset = 28, StatxSizeOffset = 40;

    [LibraryImport("libc", EntryPoint = "open", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    private static partial int Open(string path, int flags);

    [LibraryImport("libc", EntryPoint = "statx", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    private static unsafe partial int Statx(int dirfd, string path, int flags, uint mask, byte* buffer);
}
