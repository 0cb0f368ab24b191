namespace Backupd.Daemon.Workflow;

/// <summary>The one place that decides what backs <see cref="IBackupTarget"/> for a repository directory.</summary>
public static class BackupTargets
{
    public static IBackupTarget Open(string repositoryDirectory) => new RepositoryBackupTarget(Path.GetFullPath(repositoryDirectory));
}
