using Backupd.Daemon.Configuration;

namespace Backupd.Daemon.Workflow;

/// <summary>
/// The part of the daemon configuration a one-off live backup or recovery needs. Without a
/// configuration file (none named, none at the default path) the defaults apply, so
/// `backupd backup` works on a host where the daemon was never configured.
/// </summary>
public sealed record LiveBackupSettings(string LibvirtUri, string StateDirectory, string? ScratchDirectory)
{
    public const string DefaultStateDirectory = "/var/lib/backupd";

    public static LiveBackupSettings Defaults => new("qemu:///system", DefaultStateDirectory, null);

    public static LiveBackupSettings From(DaemonConfig config) => new(config.LibvirtUri, config.StateDirectory, config.ScratchDirectory)
    {
        ReaderWait = config.ReaderWait,
        ScrubCycle = config.ScrubCycle,
        AgentTimeout = config.AgentTimeout,
        ChangedBlocks = config.ChangedBlocks,
    };

    public TimeSpan ReaderWait { get; init; } = Storage.Repository.BackupRepository.DefaultReaderWait;
    public int ScrubCycle { get; init; } = Storage.Repository.BackupRepository.DefaultScrubCycle;
    public TimeSpan AgentTimeout { get; init; } = GuestAgent.AgentGuard.DefaultTimeout;
    /// <summary>Config changed-blocks (default on).</summary>
    public bool ChangedBlocks { get; init; } = true;

    /// <summary>Loads the named configuration (errors are errors); falls back to defaults only when none exists.</summary>
    public static LiveBackupSettings Resolve(string? explicitPath, Func<string?, DaemonConfig> load)
    {
        var named = explicitPath ?? Environment.GetEnvironmentVariable(ConfigLoader.EnvironmentVariable);
        if (named is null && !File.Exists(ConfigLoader.DefaultPath)) return Defaults;
        return From(load(named));
    }

    public WorkflowOptions ToOptions() => new() { StateDirectory = StateDirectory, ScratchDirectory = ScratchDirectory, ReaderWait = ReaderWait, ScrubCycle = ScrubCycle, AgentTimeout = AgentTimeout,
        ChangedBlockTracking = ChangedBlocks };
}
