using System.Diagnostics;
using System.Runtime.InteropServices;
using Microsoft.Win32.SafeHandles;

namespace Backupd.Storage.Repository;

/// <summary>
/// The per-group locks (docs/repository-format.md, "Locks"), both flocks, dropped by the kernel when the process dies:
/// <list type="bullet">
/// <item><c>groups/ID/lock</c>: readers (restore, verify) take it shared, writers exclusive. Readers never wait: a
/// writer holding it refuses them (<see cref="RepositoryBusyException"/>).</item>
/// <item><c>groups/ID/writer.lock</c>: writers (backup, deletion, recovery) take it exclusively first, without waiting,
/// so a second writer is refused at once; the holder then waits, bounded, for the readers of <c>lock</c> to finish.</item>
/// </list>
/// A held <c>lock</c> exclusive always means a live writer, so a journal under a free lock means an interrupted update.
/// </summary>
internal sealed partial class GroupLock : IDisposable
{
    private const int LockShared = 1;
    private const int LockExclusive = 2;
    private const int LockNonBlocking = 4;
    private const int EWouldBlock = 11;
    private static readonly TimeSpan PollInterval = TimeSpan.FromMilliseconds(100);
    private static readonly TimeSpan ForkGrace = TimeSpan.FromMilliseconds(250);
    private readonly SafeFileHandle _handle;
    private readonly SafeFileHandle? _writer;

    private GroupLock(SafeFileHandle handle, SafeFileHandle? writer)
    {
        _handle = handle;
        _writer = writer;
    }

    [LibraryImport("libc", EntryPoint = "flock", SetLastError = true)]
    private static partial int Flock(SafeFileHandle fd, int operation);

    /// <summary>A reader's lock: shared with other readers, refused at once while a writer holds the group.</summary>
    public static GroupLock Shared(RepositoryDirectory beneath, string groupDirectory, string purpose)
    {
        var busy = $"{groupDirectory} is being updated by a backup or deletion ({purpose} refused; try again when it ends)";
        var handle = Open(beneath, groupDirectory, "lock");
        if (!TryFlockBriefly(handle, LockShared))
        {
            handle.Dispose();
            throw new RepositoryBusyException(busy);
        }
        return new GroupLock(handle, null);
    }

    /// <summary>
    /// A writer's lock. Refused at once if another writer holds the group; otherwise waits up to <paramref name="readerWait"/>
    /// for restores and verifies of the group to end, and is refused (nothing changed) if they do not.
    /// </summary>
    /// <param name="refuse">Throws when the group must not be written at all (a pinned point): checked once the writer lock is
    /// held, before waiting for readers (an answer at once), and again once the group is ours (a pin whose holder died).</param>
    public static GroupLock Exclusive(RepositoryDirectory beneath, string groupDirectory, string purpose, TimeSpan readerWait, Action? refuse = null, CancellationToken ct = default)
    {
        var busy = $"{groupDirectory} is in use by another backup, deletion or recovery ({purpose} refused; try again when it ends)";
        var writer = Open(beneath, groupDirectory, "writer.lock");
        SafeFileHandle? handle = null;
        try
        {
            if (!TryFlockBriefly(writer, LockExclusive))
            {
                throw new RepositoryBusyException(busy);
            }
            refuse?.Invoke();
            handle = Open(beneath, groupDirectory, "lock");
            var clock = Stopwatch.StartNew();
            while (!TryFlockBriefly(handle, LockExclusive))
            {
                var left = readerWait - clock.Elapsed;
                if (left <= TimeSpan.Zero)
                {
                    throw new RepositoryBusyException(
                        $"{groupDirectory} is being read by a restore or verify; waited {Format(readerWait)} for it to end ({purpose} refused, nothing was done; try again when it ends)");
                }
                ct.WaitHandle.WaitOne(left < PollInterval ? left : PollInterval);
                ct.ThrowIfCancellationRequested(); // a stopping daemon does not sit out the wait
            }
            refuse?.Invoke();
            return new GroupLock(handle, writer);
        }
        catch
        {
            handle?.Dispose();
            writer.Dispose();
            throw;
        }
    }

    /// <summary>Opened beneath the repository root, never through a link (our raw open takes no lock of its own: the flocks decide).</summary>
    private static SafeFileHandle Open(RepositoryDirectory beneath, string groupDirectory, string name) =>
        beneath.OpenFile(Path.Combine(groupDirectory, name), FileMode.OpenOrCreate, FileAccess.ReadWrite);

    /// <summary>
    /// <see cref="TryFlock"/>, tried again for a moment before it counts as held: a lock just released can stay held
    /// by a child process another thread is starting (between its fork and exec the child shares every descriptor,
    /// close-on-exec ones too), so "held" is only believed once it lasts longer than a process start.
    /// </summary>
    private static bool TryFlockBriefly(SafeFileHandle handle, int mode)
    {
        var clock = Stopwatch.StartNew();
        while (!TryFlock(handle, mode))
        {
            if (clock.Elapsed > ForkGrace)
            {
                return false;
            }
            Thread.Sleep(10);
        }
        return true;
    }

    private static bool TryFlock(SafeFileHandle handle, int mode)
    {
        if (Flock(handle, mode | LockNonBlocking) == 0)
        {
            return true;
        }
        var errno = Marshal.GetLastPInvokeError();
        return errno == EWouldBlock ? false : throw new IOException($"flock failed (errno {errno})");
    }

    private static string Format(TimeSpan t) => t.TotalSeconds < 120 ? $"{t.TotalSeconds:0.#} s" : $"{t.TotalMinutes:0.#} min";

    public void Dispose()
    {
        _handle.Dispose(); // reverse order of taking them
        _writer?.Dispose();
    }
}
