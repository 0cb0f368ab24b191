namespace Backupd.Daemon.Workflow;

/// <summary>One backupd run per domain on this host: an exclusive lock file under STATE/locks (flock, released by the kernel on a crash).</summary>
public sealed class DomainLock : IDisposable
{
    private readonly FileStream stream;

    private DomainLock(FileStream stream) => this.stream = stream;

    public static DomainLock Acquire(string stateDirectory, string domainUuid, string domainName)
    {
        var dir = Path.Combine(stateDirectory, "locks");
        Directory.CreateDirectory(dir);
        try
        {
            return new DomainLock(new FileStream(Path.Combine(dir, domainUuid + ".lock"), FileMode.OpenOrCreate, FileAccess.ReadWrite, FileShare.None));
        }
        catch (IOException)
        {
            throw new BackupRefusedException(RefusalKind.Busy, $"another backupd run is working on domain '{domainName}' ({domainUuid})");
        }
    }

    public void Dispose() => stream.Dispose();
}
