using System.ComponentModel;
using System.Runtime.InteropServices;
using System.Text;
using Microsoft.Win32.SafeHandles;
using static Backupd.Storage.Repository.BeneathNative;

namespace Backupd.Storage.Repository;

/// <summary>What a name in the repository is, links not followed.</summary>
internal enum EntryKind
{
    Missing,
    File,
    Directory,
    Link,
    Other,
}

/// <summary>
/// The one door to a repository's files. A repository lives on a NAS, an NFS export or a USB disk, and whoever can
/// write there must not reach the rest of the host (backupd runs as root): every open, create, rename and delete
/// resolves its path relative to a handle of the repository root with openat2(RESOLVE_BENEATH|RESOLVE_NO_SYMLINKS)
/// (per-component openat(O_NOFOLLOW) where the kernel has no openat2), so a planted symlink, an absolute path or
/// a ".." fails with an error naming the path instead of leading elsewhere. Paths are given as the absolute paths
/// <see cref="RepositoryLayout"/> builds (they read well in messages) and must lie textually below the root.
/// Only regular files are opened as files (a FIFO or device never blocks or is written), and a file with other
/// hard links is never opened for writing.
/// </summary>
internal sealed class RepositoryDirectory : IDisposable
{
    private const uint DefaultFileMode = 0x1B6; // 0666 & ~umask, as FileStream creates files
    private const uint DirectoryMode = 0x1FF; // 0777 & ~umask
    private const int MaxTreeDepth = 16;
    private const int FGetFl = 3;
    private const int FSetFl = 4;
    private readonly SafeFileHandle _root;
    private readonly bool _componentWalk;
    private static bool _noOpenat2;

    /// <param name="root">The repository directory.</param>
    /// <param name="componentWalk">Tests: behave as on a kernel without openat2 (the per-component fallback).</param>
    public RepositoryDirectory(string root, bool componentWalk = false)
    {
        _componentWalk = componentWalk;
        Root = Path.TrimEndingDirectorySeparator(Path.GetFullPath(root));
        // The root itself is the operator's choice (it may be reached through links); everything below is not.
        var fd = Openat(-100 /* AT_FDCWD */, Root, OPath | ODirectory | OCloExec, 0);
        if (fd < 0)
        {
            var errno = Marshal.GetLastPInvokeError();
            throw errno == ENOENT
                ? new DirectoryNotFoundException($"repository directory {Root} does not exist")
                : new IOException($"cannot open repository directory {Root}: {Describe(errno)}");
        }
        _root = new SafeFileHandle(fd, ownsHandle: true);
    }

    public string Root { get; }

    private int RootFd => (int)_root.DangerousGetHandle();

    /// <summary>Opens a regular file below the root. <paramref name="mode"/>/<paramref name="access"/> as for File.OpenHandle.</summary>
    public SafeFileHandle OpenFile(string path, FileMode mode, FileAccess access, uint createMode = DefaultFileMode)
    {
        var flags = access switch
        {
            FileAccess.Read => ORdOnly,
            FileAccess.Write => OWrOnly,
            _ => ORdWr,
        };
        flags |= mode switch
        {
            FileMode.Open => 0,
            FileMode.CreateNew => OCreat | OExcl,
            FileMode.Create or FileMode.OpenOrCreate => OCreat,
            FileMode.Truncate => 0,
            _ => throw new ArgumentOutOfRangeException(nameof(mode), mode, "not supported in a repository"),
        };
        // O_NONBLOCK: opening a planted FIFO must not hang; it is refused just below and cleared for the regular file.
        var fd = Open(path, Components(path), flags | ONonBlock, createMode);
        var handle = new SafeFileHandle(fd, ownsHandle: true);
        try
        {
            var errno = Stat(fd, "", AtEmptyPath, out var type, out var links);
            if (errno != 0)
            {
                throw new IOException($"cannot stat {path}: {Describe(errno)}");
            }
            if (type != SIfReg)
            {
                throw new RepositoryCorruptException($"{path} is {TypeName(type)}, not a regular file; refusing to use it (a repository holds only plain files and directories)");
            }
            if (access != FileAccess.Read && links > 1)
            {
                throw new RepositoryCorruptException($"{path} has {links} hard links; refusing to write through it (a repository's files have exactly one)");
            }
            _ = Fcntl(fd, FSetFl, Fcntl(fd, FGetFl, 0) & ~ONonBlock);
            if (mode is FileMode.Create or FileMode.Truncate)
            {
                RandomAccess.SetLength(handle, 0); // only now: O_TRUNC would cut a linked or special file before the checks
            }
            return handle;
        }
        catch
        {
            handle.Dispose();
            throw;
        }
    }

    public FileStream OpenStream(string path, FileMode mode, FileAccess access, int bufferSize = 1 << 20) =>
        new(OpenFile(path, mode, access), access, bufferSize);

    public FileStream OpenRead(string path, int bufferSize = 1 << 20) => OpenStream(path, FileMode.Open, FileAccess.Read, bufferSize);

    /// <summary>A whole small file; larger than <paramref name="maxBytes"/> is refused before it is read.</summary>
    public byte[] ReadAll(string path, long maxBytes)
    {
        using var handle = OpenFile(path, FileMode.Open, FileAccess.Read);
        var length = RandomAccess.GetLength(handle);
        if (length > maxBytes)
        {
            throw new RepositoryCorruptException($"{path}: {length} bytes, more than the {maxBytes} a repository document may have");
        }
        var bytes = new byte[length];
        var n = 0;
        while (n < bytes.Length)
        {
            var r = RandomAccess.Read(handle, bytes.AsSpan(n), n);
            if (r == 0)
            {
                throw new RepositoryCorruptException($"{path}: shrank while being read");
            }
            n += r;
        }
        return bytes;
    }

    /// <summary>What <paramref name="path"/> is (a missing parent counts as missing); a link or non-directory on the way throws.</summary>
    public EntryKind Kind(string path)
    {
        var parts = Components(path);
        if (parts.Length == 0)
        {
            return EntryKind.Directory;
        }
        int dir;
        try
        {
            dir = Open(path, parts[..^1], OPath | ODirectory, 0);
        }
        catch (FileNotFoundException)
        {
            return EntryKind.Missing;
        }
        try
        {
            var errno = Stat(dir, parts[^1], 0, out var type, out _);
            return errno switch
            {
                0 => type switch
                {
                    SIfReg => EntryKind.File,
                    SIfDir => EntryKind.Directory,
                    SIfLnk => EntryKind.Link,
                    _ => EntryKind.Other,
                },
                ENOENT => EntryKind.Missing,
                _ => throw Failure("stat", path, errno),
            };
        }
        finally
        {
            _ = Close(dir);
        }
    }

    /// <summary>True for a regular file, false when missing (or a directory); a link or special file there throws.</summary>
    public bool FileExists(string path) => Kind(path) switch
    {
        EntryKind.File => true,
        EntryKind.Missing or EntryKind.Directory => false,
        var k => throw NotPlain(path, k),
    };

    /// <summary>True for a directory, false when missing (or a file); a link or special file there throws.</summary>
    public bool DirectoryExists(string path) => Kind(path) switch
    {
        EntryKind.Directory => true,
        EntryKind.Missing or EntryKind.File => false,
        var k => throw NotPlain(path, k),
    };

    /// <summary>The entries of a directory (not "." and ".."), in no particular order.</summary>
    public List<(string Name, EntryKind Kind)> List(string path)
    {
        var fd = Open(path, Components(path), ORdOnly | ODirectory, 0);
        try
        {
            return ReadEntries(fd, path);
        }
        finally
        {
            _ = Close(fd);
        }
    }

    /// <summary>Creates a directory and its missing parents (each made durable in its parent); existing ones are kept.</summary>
    public void CreateDirectory(string path)
    {
        var parts = Components(path);
        var current = Open(Root, [], ORdOnly | ODirectory, 0);
        try
        {
            var reached = Root;
            foreach (var part in parts)
            {
                reached += "/" + part;
                if (Mkdirat(current, part, DirectoryMode) == 0)
                {
                    Sync(current, reached);
                }
                else if (Marshal.GetLastPInvokeError() is var errno && errno != EEXIST)
                {
                    throw Failure("mkdir", reached, errno);
                }
                var next = Openat(current, part, ORdOnly | ODirectory | ONoFollow | OCloExec, 0);
                if (next < 0)
                {
                    throw Failure("open", reached, Marshal.GetLastPInvokeError());
                }
                _ = Close(current);
                current = next;
            }
        }
        finally
        {
            _ = Close(current);
        }
    }

    /// <summary>
    /// Publishes a file atomically: write a temporary name, fsync, rename over <paramref name="path"/>, fsync the
    /// directory. A failure (a full disk) removes the temporary file again.
    /// </summary>
    public void WriteFile(string path, ReadOnlySpan<byte> content, uint createMode = DefaultFileMode) =>
        _ = Publish(path, content, null, noReplace: false, createMode);

    /// <summary>
    /// Publishes a new file made of <paramref name="parts"/> (one gathering write, never copied together) as
    /// <see cref="WriteFile(string, ReadOnlySpan{byte}, uint)"/> does; <paramref name="noReplace"/>: an existing file is
    /// an error (renameat2 RENAME_NOREPLACE), never overwritten.
    /// </summary>
    public void WriteFile(string path, IReadOnlyList<ReadOnlyMemory<byte>> parts, bool noReplace, uint createMode = DefaultFileMode) =>
        _ = Publish(path, default, parts, noReplace, createMode);

    /// <summary>What O_DIRECT asks of a buffer's address and length (the largest logical block size in use).</summary>
    public const int DirectAlignment = 4096;

    /// <summary>
    /// Publishes a new file as <see cref="WriteFile(string, IReadOnlyList{ReadOnlyMemory{byte}}, bool, uint)"/> does,
    /// written with O_DIRECT from <paramref name="content"/> (address and length multiples of
    /// <see cref="DirectAlignment"/>): for data written once and not read back soon, which then costs no copy into
    /// the page cache (8 MiB packs measured here: 0.1 s of system time per 1.3 GB instead of 1.1-3.0 s). False, with
    /// nothing left behind, where the file system refuses O_DIRECT (tmpfs, some FUSE): the caller writes it buffered.
    /// </summary>
    public bool TryWriteFileDirect(string path, ReadOnlySpan<byte> content, bool noReplace, uint createMode = DefaultFileMode) =>
        Publish(path, content, null, noReplace, createMode, direct: true);

    /// <summary>The <c>WriteFile</c>s: <paramref name="parts"/> when given, else <paramref name="content"/>; false only when <paramref name="direct"/> is refused.</summary>
    private bool Publish(string path, ReadOnlySpan<byte> content, IReadOnlyList<ReadOnlyMemory<byte>>? parts, bool noReplace, uint createMode, bool direct = false)
    {
        var components = Components(path);
        var leaf = components[^1];
        var dir = Open(path, components[..^1], ORdOnly | ODirectory, 0);
        try
        {
            var temp = $".{leaf}.{Guid.NewGuid():N}.tmp";
            var fd = Openat(dir, temp, OWrOnly | OCreat | OExcl | ONoFollow | OCloExec | (direct ? ODirect : 0), createMode);
            if (fd < 0)
            {
                var errno = Marshal.GetLastPInvokeError();
                if (direct && errno == EINVAL)
                {
                    _ = Unlinkat(dir, temp, 0); // the open created the file before it refused O_DIRECT (ramfs does)
                    return false;
                }
                throw Failure("create", Parent(path) + "/" + temp, errno);
            }
            try
            {
                using (var handle = new SafeFileHandle(fd, ownsHandle: true))
                {
                    if (parts is null)
                    {
                        RandomAccess.Write(handle, content, 0);
                    }
                    else
                    {
                        RandomAccess.Write(handle, parts, 0);
                    }
                    RandomAccess.FlushToDisk(handle);
                }
                if (Renameat2(dir, temp, dir, leaf, noReplace ? RenameNoReplace : 0) != 0)
                {
                    throw Failure("rename into place", path, Marshal.GetLastPInvokeError());
                }
            }
            catch
            {
                _ = Unlinkat(dir, temp, 0); // never leave a temp file behind (ENOSPC, EIO, ...)
                throw;
            }
            Sync(dir, Parent(path));
            return true;
        }
        finally
        {
            _ = Close(dir);
        }
    }

    /// <summary>Renames within the repository (replacing <paramref name="to"/> unless <paramref name="noReplace"/>: then an existing one is an error), then makes it durable.</summary>
    public void Rename(string from, string to, bool noReplace = false)
    {
        var fromParts = Components(from);
        var toParts = Components(to);
        var fromDir = Open(from, fromParts[..^1], ORdOnly | ODirectory, 0);
        try
        {
            var toDir = Open(to, toParts[..^1], ORdOnly | ODirectory, 0);
            try
            {
                if (Renameat2(fromDir, fromParts[^1], toDir, toParts[^1], noReplace ? RenameNoReplace : 0) != 0)
                {
                    throw Failure($"rename {from} to", to, Marshal.GetLastPInvokeError());
                }
                Sync(toDir, Parent(to));
                if (Parent(from) != Parent(to))
                {
                    Sync(fromDir, Parent(from));
                }
            }
            finally
            {
                _ = Close(toDir);
            }
        }
        finally
        {
            _ = Close(fromDir);
        }
    }

    /// <summary>Removes a file (a link is removed itself, never followed) if present, durably.</summary>
    public void Delete(string path)
    {
        var parts = Components(path);
        int dir;
        try
        {
            dir = Open(path, parts[..^1], ORdOnly | ODirectory, 0);
        }
        catch (FileNotFoundException)
        {
            return;
        }
        try
        {
            if (Unlinkat(dir, parts[^1], 0) == 0)
            {
                Sync(dir, Parent(path));
            }
            else if (Marshal.GetLastPInvokeError() is var errno && errno != ENOENT)
            {
                throw Failure("delete", path, errno);
            }
        }
        finally
        {
            _ = Close(dir);
        }
    }

    /// <summary>
    /// Removes a directory tree if present, walking it with directory descriptors: links inside are removed, never
    /// followed, and a link (or file) at <paramref name="path"/> itself is refused.
    /// </summary>
    public void DeleteTree(string path)
    {
        var parts = Components(path);
        if (parts.Length == 0)
        {
            throw new ArgumentException("refusing to delete the repository root", nameof(path));
        }
        switch (Kind(path))
        {
            case EntryKind.Missing:
                return;
            case EntryKind.Directory:
                break;
            case var k:
                throw NotPlain(path, k);
        }
        var dir = Open(path, parts[..^1], ORdOnly | ODirectory, 0);
        try
        {
            RemoveTree(dir, parts[^1], path, 0);
            Sync(dir, Parent(path));
        }
        finally
        {
            _ = Close(dir);
        }
    }

    /// <summary>Makes a directory's entries (created, renamed, removed files) durable.</summary>
    public void FsyncDirectory(string path)
    {
        var fd = Open(path, Components(path), ORdOnly | ODirectory, 0);
        try
        {
            Sync(fd, path);
        }
        finally
        {
            _ = Close(fd);
        }
    }

    public void Dispose() => _root.Dispose();

    private static void RemoveTree(int parent, string name, string path, int depth)
    {
        if (depth > MaxTreeDepth)
        {
            throw new RepositoryCorruptException($"{path}: nested deeper than a repository ever is ({MaxTreeDepth}); refusing to delete it");
        }
        var fd = Openat(parent, name, ORdOnly | ODirectory | ONoFollow | OCloExec, 0);
        if (fd < 0)
        {
            throw Failure("open", path, Marshal.GetLastPInvokeError());
        }
        try
        {
            foreach (var (entry, kind) in ReadEntries(fd, path))
            {
                if (kind == EntryKind.Directory)
                {
                    RemoveTree(fd, entry, path + "/" + entry, depth + 1);
                }
                else if (Unlinkat(fd, entry, 0) != 0)
                {
                    throw Failure("delete", path + "/" + entry, Marshal.GetLastPInvokeError());
                }
            }
        }
        finally
        {
            _ = Close(fd);
        }
        if (Unlinkat(parent, name, AtRemoveDir) != 0)
        {
            throw Failure("remove directory", path, Marshal.GetLastPInvokeError());
        }
    }

    private static List<(string, EntryKind)> ReadEntries(int fd, string path)
    {
        var entries = new List<(string, EntryKind)>();
        var buffer = new byte[32 * 1024];
        while (true)
        {
            var n = (int)Getdents64(fd, buffer, (nuint)buffer.Length);
            if (n < 0)
            {
                throw Failure("list", path, Marshal.GetLastPInvokeError());
            }
            if (n == 0)
            {
                return entries;
            }
            for (var pos = 0; pos < n;)
            {
                // struct linux_dirent64: ino u64, off i64, reclen u16, type u8, name (NUL-terminated)
                var reclen = BitConverter.ToUInt16(buffer, pos + 16);
                var type = buffer[pos + 18];
                var nameBytes = buffer.AsSpan(pos + 19, reclen - 19);
                var name = Encoding.UTF8.GetString(nameBytes[..nameBytes.IndexOf((byte)0)]);
                pos += reclen;
                if (name is "." or "..")
                {
                    continue;
                }
                var kind = type switch
                {
                    DtDir => EntryKind.Directory,
                    DtReg => EntryKind.File,
                    DtLnk => EntryKind.Link,
                    DtUnknown => StatKind(fd, name, path),
                    _ => EntryKind.Other,
                };
                entries.Add((name, kind));
            }
        }
    }

    private static EntryKind StatKind(int dir, string name, string path)
    {
        var errno = Stat(dir, name, 0, out var type, out _);
        if (errno != 0)
        {
            throw Failure("stat", path + "/" + name, errno);
        }
        return type switch
        {
            SIfReg => EntryKind.File,
            SIfDir => EntryKind.Directory,
            SIfLnk => EntryKind.Link,
            _ => EntryKind.Other,
        };
    }

    /// <summary>Opens a path (given as its components below the root) without following any link.</summary>
    private int Open(string path, string[] parts, int flags, uint mode)
    {
        var relative = parts.Length == 0 ? "." : string.Join('/', parts);
        if (!_noOpenat2 && !_componentWalk)
        {
            var how = new OpenHow
            {
                Flags = (ulong)(flags | ONoFollow | OCloExec),
                Mode = (flags & OCreat) != 0 ? mode : 0,
                Resolve = ResolveBeneath | ResolveNoSymlinks | ResolveNoMagicLinks,
            };
            var fd = Openat2(RootFd, relative, ref how);
            if (fd >= 0)
            {
                return fd;
            }
            var errno = Marshal.GetLastPInvokeError();
            if (errno is not (ENOSYS or EPERM))
            {
                throw Failure("open", path, errno);
            }
            _noOpenat2 = true; // Linux < 5.6, or a seccomp filter that does not know the call (older container runtimes say EPERM)
        }
        var current = RootFd;
        try
        {
            for (var i = 0; i < parts.Length - 1; i++)
            {
                var next = Openat(current, parts[i], OPath | ODirectory | ONoFollow | OCloExec, 0);
                if (next < 0)
                {
                    throw Failure("open", path, Marshal.GetLastPInvokeError());
                }
                if (current != RootFd)
                {
                    _ = Close(current);
                }
                current = next;
            }
            var last = parts.Length == 0 ? "." : parts[^1];
            var result = Openat(current, last, flags | ONoFollow | OCloExec, mode);
            return result >= 0 ? result : throw Failure("open", path, Marshal.GetLastPInvokeError());
        }
        finally
        {
            if (current != RootFd)
            {
                _ = Close(current);
            }
        }
    }

    /// <summary>The components of <paramref name="path"/> below the root; anything that would not stay below it is refused.</summary>
    private string[] Components(string path)
    {
        ArgumentNullException.ThrowIfNull(path);
        if (path == Root)
        {
            return [];
        }
        if (!path.StartsWith(Root + "/", StringComparison.Ordinal))
        {
            throw new RepositoryCorruptException($"{path} is not inside the repository {Root}; refusing to touch it");
        }
        var parts = path[(Root.Length + 1)..].Split('/');
        if (parts.Any(p => p is "" or "." or ".."))
        {
            throw new RepositoryCorruptException($"{path} has an empty, '.' or '..' component; refusing to resolve it in the repository {Root}");
        }
        return parts;
    }

    private static string Parent(string path) => path[..path.LastIndexOf('/')];

    private static void Sync(int fd, string path)
    {
        if (Fsync(fd) != 0)
        {
            throw new IOException($"fsync of directory {path} failed: {Describe(Marshal.GetLastPInvokeError())}");
        }
    }

    private static Exception Failure(string operation, string path, int errno) => errno switch
    {
        ENOENT => new FileNotFoundException($"{path} does not exist ({operation})", path),
        ELOOP or ENOTDIR => new RepositoryCorruptException(
            $"{path}: a symbolic link (or a file where a directory belongs) is on the way; a repository never contains links, so it is not followed ({operation} refused)"),
        EXDEV => new RepositoryCorruptException($"{path} leads outside the repository; refusing to {operation} it"),
        EEXIST => new IOException($"{path} already exists ({operation})"),
        _ => new IOException($"cannot {operation} {path}: {Describe(errno)}"),
    };

    private static RepositoryCorruptException NotPlain(string path, EntryKind kind) =>
        new($"{path} is {(kind == EntryKind.Link ? "a symbolic link" : "a special file")}; a repository holds only plain files and directories, so it is not followed or used");

    private static string TypeName(ushort type) => type switch
    {
        SIfDir => "a directory",
        SIfLnk => "a symbolic link",
        0x1000 => "a FIFO",
        0x2000 => "a character device",
        0x6000 => "a block device",
        0xC000 => "a socket",
        _ => $"of type {Convert.ToString(type, 8)}",
    };

    private static string Describe(int errno) => new Win32Exception(errno).Message;
}
