namespace Backupd.Daemon.Configuration;

/// <summary>The daemon's configuration file (config/backupd.yaml), after validation. Paths are absolute.</summary>
public sealed record DaemonConfig
{
    /// <summary>File the configuration was read from, for messages.</summary>
    public required string SourcePath { get; init; }
    public string LibvirtUri { get; init; } = "qemu:///system";
    /// <summary>Npgsql connection string of the catalog. Never logged: it may hold a password.</summary>
    public required string CatalogConnectionString { get; init; }
    /// <summary>Run journal, locks, local state. Must be on local disk.</summary>
    public required string StateDirectory { get; init; }
    /// <summary>Where overlays go; null means beside each base image (best for AppArmor).</summary>
    public string? ScratchDirectory { get; init; }
    public required string PoliciesDirectory { get; init; }
    /// <summary>Upper bound on concurrent backups across all policies.</summary>
    public int MaxParallel { get; init; } = 2;
    /// <summary>A schedule missed while the daemon was down runs once at start-up if it is this recent.</summary>
    public TimeSpan MisfireGrace { get; init; } = TimeSpan.FromHours(6);
    /// <summary>How long a finished run retries an unreachable catalog before leaving its record for the next start, run or `recover`.</summary>
    public TimeSpan CatalogRetry { get; init; } = TimeSpan.FromMinutes(2);
    /// <summary>How long a backup waits, before its snapshot, for restores and verifies of the same group to end.</summary>
    public TimeSpan ReaderWait { get; init; } = Storage.Repository.BackupRepository.DefaultReaderWait;
    /// <summary>Each backup re-checks 1/N of the mirror's unchanged blocks, all of them every N runs; 0 turns it off.</summary>
    public int ScrubCycle { get; init; } = Storage.Repository.BackupRepository.DefaultScrubCycle;
    /// <summary>`changed-blocks: off` turns changed-block tracking off (no checkpoints are created; every disk is read in full).</summary>
    public bool ChangedBlocks { get; init; } = true;
    /// <summary>Bound on every guest-agent call of a run (ping, freeze, thaw): a hung agent costs seconds, not minutes.</summary>
    public TimeSpan AgentTimeout { get; init; } = GuestAgent.AgentGuard.DefaultTimeout;
    /// <summary>How often the daemon looks for domains with no success in 1.5x their policy's interval (stale notification).</summary>
    public TimeSpan StaleCheck { get; init; } = Notifications.NotificationDispatcher.DefaultStaleCheck;
    /// <summary>The metrics/status listener; null when the configuration has no `http:` section (off).</summary>
    public Web.HttpSettings? Http { get; init; }
    /// <summary>Notification targets of the `notify:` section.</summary>
    public IReadOnlyList<Notifications.NotifyTarget> Notify { get; init; } = [];
}
