using Backupd.Daemon.Configuration;
using Backupd.Daemon.Images;
using Backupd.Daemon.Libvirt;
using Backupd.Daemon.Workflow;
using Backupd.Policies.Model;
using Backupd.Storage.Catalog;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Logging;

namespace Backupd.Daemon.Runs;

/// <summary>The catalog's part in a run: its store (domain lock, run and point rows), how long the run's end retries it, where the record waits meanwhile.</summary>
public sealed record CatalogRecording(CatalogStore Store, TimeSpan Retry, PendingRunRecords Pending)
{
    public static CatalogRecording For(CatalogStore store, DaemonConfig config) => new(store, config.CatalogRetry, new PendingRunRecords(config.StateDirectory));
}

/// <summary>
/// Everything one backup of one domain needs, built in one place (<see cref="ForPolicy"/> for the scheduler,
/// <see cref="ForCommand"/> for `backupd backup --domain`). <see cref="Catalog"/> null: repository only (`--no-catalog`).
/// </summary>
public sealed record BackupSpec(string Domain, string Repository, string LibvirtUri, WorkflowOptions Options, RunOrigin Origin)
{
    /// <summary>Disk targets to back up; empty: every eligible disk (or the policy's <see cref="DiskPatterns"/>).</summary>
    public IReadOnlyList<string> IncludeDisks { get; init; } = [];
    public IReadOnlyList<string> ExcludeDisks { get; init; } = [];
    /// <summary>A policy's disk patterns, matched against the domain's live XML once it is found; null: <see cref="IncludeDisks"/> as given.</summary>
    public Policies.Selection.NameSelection? DiskPatterns { get; init; }
    public QuiesceMode Quiesce { get; init; } = QuiesceMode.Preferred;
    /// <summary>Changed-block tracking: `backup --full` and the policy's full-every.</summary>
    public ReadRequest Read { get; init; } = new();
    /// <summary>Block size for files new to the repository (a policy's block-size); null: the repository's default.</summary>
    public int? BlockSize { get; init; }
    /// <summary>Time box for the run (a policy's copy timeout; the commit and pivot still run when it expires); null: none.</summary>
    public TimeSpan? CopyTimeout { get; init; }
    public CatalogRecording? Catalog { get; init; }
    /// <summary>Runs after a recorded backup while the domain's catalog lock is still held, on the same connection (a policy's `chains:` maintenance).</summary>
    public Func<IHypervisor, BackupRun, CancellationToken, Task>? AfterBackupWhileLocked { get; init; }

    /// <summary>A scheduled backup of <paramref name="domain"/> for <paramref name="policy"/>, recorded in <paramref name="catalog"/>.</summary>
    public static BackupSpec ForPolicy(DaemonConfig config, PolicyDefinition policy, string domain, CatalogRecording catalog) =>
        new(domain, policy.Repository, policy.Connection ?? config.LibvirtUri, OptionsFor(policy, LiveBackupSettings.From(config).ToOptions()), RunOrigin.Schedule(policy.Name))
        {
            DiskPatterns = policy.Disks,
            BlockSize = policy.BlockSize,
            CopyTimeout = policy.CopyTimeout,
            Catalog = catalog,
            Quiesce = policy.Quiesce,
            Read = new ReadRequest(FullEvery: policy.FullEvery),
        };

    /// <summary>`backupd backup --domain`: the configuration's (or the defaults') settings, with the command's own options applied by <paramref name="apply"/>.</summary>
    public static BackupSpec ForCommand(LiveBackupSettings settings, string domain, string repository, Func<WorkflowOptions, WorkflowOptions> apply, CatalogRecording? catalog) =>
        new(domain, repository, settings.LibvirtUri, apply(settings.ToOptions()), RunOrigin.Command) { Catalog = catalog };

    /// <summary>The daemon's workflow options with the policy's commit time-box and bandwidth limits (null = unlimited).</summary>
    internal static WorkflowOptions OptionsFor(PolicyDefinition policy, WorkflowOptions daemon) => daemon with
    {
        CommitReadyTimeout = policy.CommitTimeout,
        CopyBandwidth = policy.CopyBandwidth,
        CommitBandwidth = policy.CommitBandwidth,
    };
}

/// <summary>
/// The one way a backup of a domain runs, for the scheduler and both forms of `backupd backup --domain`:
/// connect, resolve the domain once, then recovery + <see cref="BackupWorkflow"/> into the repository,
/// under <see cref="BackupRunner"/> (catalog lock and records) when the spec has a catalog. Returns one
/// <see cref="BackupRun"/>; a failed run throws (<see cref="BackupFailedException"/> carries the workflow's result).
/// </summary>
public sealed class BackupService(ILoggerFactory? loggers = null)
{
    private readonly ILoggerFactory _loggers = loggers ?? NullLoggerFactory.Instance;

    public async Task<BackupRun> RunAsync(BackupSpec spec, Action<BackupProgress>? onProgress, CancellationToken ct, IProgress<RunProgress>? observer = null)
    {
        using var hypervisor = await Task.Run(() => Connect(spec.LibvirtUri), ct);
        var found = hypervisor.FindDomain(spec.Domain) ?? throw new DomainNotFoundException(spec.Domain);
        var domain = new BackupDomain(Guid.Parse(found.Uuid), found.Name);
        var disks = spec.DiskPatterns is { } patterns ? DisksFor(patterns, hypervisor.GetXml(found.Uuid, DomainXmlKind.Live)) : spec.IncludeDisks;
        var backup = new WorkflowDomainBackup(hypervisor, new QemuImg(), spec, domain, disks, _loggers.CreateLogger("backupd.backup")) { OnProgress = onProgress };

        using var timeBox = CancellationTokenSource.CreateLinkedTokenSource(ct);
        if (spec.CopyTimeout is { } timeout) timeBox.CancelAfter(timeout);
        if (spec.Catalog is { } catalog)
        {
            var runner = new BackupRunner(catalog.Store, backup, _loggers.CreateLogger<BackupRunner>()) 
            {
                CatalogRetry = catalog.Retry,
                Pending = catalog.Pending,
                AfterBackupWhileLocked = spec.AfterBackupWhileLocked is { } after ? (run, token) => after(hypervisor, run, token) : null,
            };
            return await runner.RunAsync(spec.Domain, spec.Origin, observer, timeBox.Token);
        }
        var outcome = await backup.BackupAsync(domain, null, observer ?? NoProgress.Instance, timeBox.Token);
        var point = RepositoryRecords.ToRecord(outcome.Point, outcome.RepositoryDirectory, outcome.Stats.Consistency)
            ?? throw new InvalidOperationException($"workflow returned a restore point of group '{outcome.Point.GroupId}' for domain {domain.Uuid}");
        return new BackupRun(null, domain, point, outcome.Stats, outcome.Workflow);
    }

    /// <summary>A policy's disk patterns as the exact targets the workflow takes; empty (every eligible disk) when the policy names none.</summary>
    internal static IReadOnlyList<string> DisksFor(Policies.Selection.NameSelection disks, string liveXml)
    {
        if (disks == Policies.Selection.NameSelection.All) return [];
        var targets = DomainXml.ParseDisks(liveXml).Where(d => DiskSelection.Ineligible(d) is null).Select(d => d.Target).Where(disks.Matches).ToList();
        return targets.Count > 0
            ? targets
            : throw new BackupRefusedException(RefusalKind.BadRequest, $"no eligible disk matches the policy's disks ({string.Join(", ", disks.Include)})");
    }

    private static LibvirtHypervisor Connect(string uri)
    {
        try { return LibvirtHypervisor.Open(uri); }
        catch (LibvirtException e) { throw new BackupFailedException($"cannot connect to libvirt at {uri}: {e.LibvirtMessage}", needsAttention: false); }
    }

    /// <summary>A run the catalog does not record has no progress rows to write.</summary>
    private sealed class NoProgress : IProgress<RunProgress>
    {
        public static readonly NoProgress Instance = new();
        public void Report(RunProgress value) { }
    }
}
