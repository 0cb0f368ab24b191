namespace Backupd.Daemon.Workflow;

/// <summary>
/// One backupd run per domain on this host: an exclusive lock file (flock, released by the kernel
/// on a crash). It lives in /run/lock/backupd when that exists, so that every backupd process on the
/// host sees it whatever its state directory; otherwise under STATE/locks. Recovery takes it too,
/// so it never merges the overlay of a run that is still going.
/// </summary>
public sealed class HostRunLock : IDisposable
{
    private const string HostLockDirectory = "/run/lock/backupd";
    private readonly FileStream stream;

    private HostRunLock(FileStream stream) => this.stream = stream;

    public static HostRunLock Acquire(string stateDirectory, string domainUuid, string domainName) =>
        TryAcquire(stateDirectory, domainUuid)
        ?? throw new BackupRefusedException(RefusalKind.Busy, $"another backupd run is working on domain '{domainName}' ({domainUuid})");

    /// <summary>Null when another process holds it.</summary>
    public static HostRunLock? TryAcquire(string stateDirectory, string domainUuid)
    {
        var dir = Directory.Exists("/run/lock") ? HostLockDirectory : Path.Combine(stateDirectory, "locks");
        Directory.CreateDirectory(dir);
        try
        {
            return new HostRunLock(new FileStream(Path.Combine(dir, domainUuid + ".lock"), FileMode.OpenOrCreate, FileAccess.ReadWrite, FileShare.None));
        }
        catch (IOException)
        {
            return null;
        }
    }

    public void Dispose() => stream.Dispose();
}
