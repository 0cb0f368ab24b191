namespace Backupd.Daemon.Workflow;

/// <summary>The one place that decides what backs <see cref="IBackupTarget"/> for a repository directory.</summary>
public static class BackupTargets
{
    /// <summary>The versioned repository (mirror + undo records). Dispose it when the run is over.</summary>
    public static RepositoryBackupTarget Open(string repositoryDirectory, long? copyBytesPerSecond = null) => new(Path.GetFullPath(repositoryDirectory), copyBytesPerSecond);

    /// <summary>The repository with the run's bandwidth, reader wait and scrub settings; <paramref name="blockSize"/> for files new to it.</summary>
    public static RepositoryBackupTarget Open(string repositoryDirectory, WorkflowOptions options, int? blockSize = null) =>
        new(Path.GetFullPath(repositoryDirectory), options.CopyBandwidth, blockSize) { ReaderWait = options.ReaderWait, ScrubCycle = options.ScrubCycle };
}
