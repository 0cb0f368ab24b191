using System.Runtime.InteropServices;
using Microsoft.Win32.SafeHandles;

namespace Backupd.Storage.Repository;

/// <summary>
/// The per-group lock: flock on groups/ID/lock. Writers take it exclusively, readers shared; both never wait
/// (a held lock → <see cref="RepositoryBusyException"/>). The kernel drops it when the process dies, so a
/// held lock always means a live writer and a journal under a free lock means an interrupted update.
/// </summary>
internal sealed partial class GroupLock : IDisposable
{
    private const int LockShared = 1;
    private const int LockExclusive = 2;
    private const int LockNonBlocking = 4;
    private readonly SafeFileHandle _handle;

    private GroupLock(SafeFileHandle handle) => _handle = handle;

    [LibraryImport("libc", EntryPoint = "flock", SetLastError = true)]
    private static partial int Flock(SafeFileHandle fd, int operation);

    public static GroupLock Acquire(RepositoryDirectory beneath, string groupDirectory, bool exclusive, string purpose)
    {
        var handle = beneath.OpenFile(Path.Combine(groupDirectory, "lock"), FileMode.OpenOrCreate, FileAccess.ReadWrite);
        if (Flock(handle, (exclusive ? LockExclusive : LockShared) | LockNonBlocking) != 0)
        {
            handle.Dispose();
            throw new RepositoryBusyException(exclusive
                ? $"{groupDirectory} is in use by another backup, deletion or restore ({purpose} refused; try again when it ends)"
                : $"{groupDirectory} is being updated by a backup or deletion ({purpose} refused; try again when it ends)");
        }
        return new GroupLock(handle);
    }

    public void Dispose() => _handle.Dispose();
}
