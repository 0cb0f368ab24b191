namespace Backupd.Daemon.Workflow;

/// <summary>The one place that decides what backs <see cref="IBackupTarget"/> for a repository directory.</summary>
public static class BackupTargets
{
    /// <summary>Interim: plain directory copies until the versioned repository (issue 3) is on main.</summary>
    public static IBackupTarget Open(string repositoryDirectory) => new DirectoryBackupTarget(Path.GetFullPath(repositoryDirectory));
}
