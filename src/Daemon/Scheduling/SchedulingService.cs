using System.Runtime.InteropServices;
using Backupd.Daemon.Configuration;
using Backupd.Daemon.Hosting;
using Backupd.Daemon.Images;
using Backupd.Daemon.Libvirt;
using Backupd.Daemon.Workflow;
using Backupd.Policies.Loading;
using Microsoft.Extensions.Hosting.Systemd;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

namespace Backupd.Daemon.Scheduling;

/// <summary>
/// The daemon's scheduling loop: recovers leftover overlays, loads the policies, starts Quartz,
/// catches up fires missed while down, then reloads on SIGHUP and on policy file changes
/// (debounced) until stopped. Stopping is graceful: no new runs; running backups are cancelled,
/// commit and pivot, and are awaited.
/// </summary>
public sealed class SchedulingService(
    DaemonConfig config, IBackupRunner runner, IDomainSource domains, ILogger<SchedulingService> logger, ISystemdNotifier? notifier = null,
    IOptions<HostOptions>? hostOptions = null, Observability.PolicyView? policyView = null) : BackgroundService
{
    public static readonly TimeSpan ReloadQuiet = TimeSpan.FromMilliseconds(500);

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        await RecoverLeftoversAsync(stoppingToken);

        var state = ScheduleState.Load(config.StateDirectory);
        using var gate = new RunGate(config.MaxParallel);
        var dispatcher = new PolicyDispatcher(runner, domains, gate, config.LibvirtUri, state, logger) { Verifier = runner as IRestorePointVerifier, Driller = runner as IRestoreDriller };
        await using var scheduler = new PolicyScheduler(dispatcher, state, config.MisfireGrace, logger);
        await scheduler.StartAsync(stoppingToken);
        try
        {
            await ReloadAsync(scheduler, stoppingToken);
        }
        catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
        {
            logger.StoppingDuringFirstLoad();
            await scheduler.StopAsync();
            return;
        }
        scheduler.CatchUp(DateTimeOffset.UtcNow); // logs each catch-up it starts

        var watchdog = WatchdogAsync(stoppingToken);
        var reload = new ReloadSignal(ReloadQuiet);
        using var hangup = PosixSignalRegistration.Create(PosixSignal.SIGHUP, context =>
        {
            context.Cancel = true; // SIGHUP means reload, never terminate
            logger.ReloadSignalled();
            reload.Request();
        });
        using var watcher = WatchPolicies(reload);
        try
        {
            while (!stoppingToken.IsCancellationRequested)
            {
                await reload.WaitAsync(stoppingToken);
                try
                {
                    await ReloadAsync(scheduler, stoppingToken);
                }
                catch (Exception e) when (e is IOException or UnauthorizedAccessException)
                {
                    // The policies in force stay; the next change or SIGHUP tries again.
                    logger.PolicyReloadFailed(e, config.PoliciesDirectory, e.Message);
                }
            }
        }
        catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
        {
        }
        Notify("STATUS=stopping: waiting for running backups to commit and pivot");
        logger.Stopping();
        await scheduler.StopAsync();
        await watchdog;
    }

    /// <summary>
    /// With WatchdogSec= (systemd sets WATCHDOG_USEC, and WATCHDOG_PID when it must be us), pings
    /// WATCHDOG=1 at half the interval while the service runs, so a hung process gets restarted.
    /// </summary>
    private async Task WatchdogAsync(CancellationToken ct)
    {
        if (notifier is null || !long.TryParse(Environment.GetEnvironmentVariable("WATCHDOG_USEC"), out var usec) || usec <= 0) return;
        if (Environment.GetEnvironmentVariable("WATCHDOG_PID") is { Length: > 0 } pid && pid != Environment.ProcessId.ToString(System.Globalization.CultureInfo.InvariantCulture)) return;
        var interval = TimeSpan.FromMicroseconds(usec / 2);
        logger.WatchdogPinging(interval);
        try
        {
            while (true)
            {
                notifier.Notify(new ServiceState("WATCHDOG=1"));
                await Task.Delay(interval, ct);
            }
        }
        catch (OperationCanceledException) when (ct.IsCancellationRequested)
        {
        }
    }

    /// <summary>
    /// Loads on a pool thread and stops waiting when the daemon stops: files are opened without blocking
    /// (a FIFO is refused, not waited on), and a read stuck anyway (a hung NFS mount) must not hold up SIGTERM.
    /// </summary>
    private async Task ReloadAsync(PolicyScheduler scheduler, CancellationToken ct)
    {
        var files = Directory.Exists(config.PoliciesDirectory)
            ? await Task.Run(() => PolicyLoader.PolicyFilesIn(config.PoliciesDirectory).Select(PolicyLoader.LoadFile)
                .Select(f => NotifyNameChecks.Check(f, config.Notify.Select(t => t.Name).ToList())).ToList(), ct).WaitAsync(ct)
            : [];
        if (!Directory.Exists(config.PoliciesDirectory)) logger.PoliciesDirectoryMissing(config.PoliciesDirectory);
        var outcome = await scheduler.ApplyAsync(files, ct);
        ApplyShutdownBudget(outcome.Active);
        policyView?.Set(outcome.Active);
        Notify($"STATUS={outcome.Active.Count} policies scheduled{(outcome.Errors.Count > 0 ? $", {outcome.Errors.Count} policy errors (see the journal)" : "")}");
    }

    /// <summary>
    /// The host's stop waits for the worst merge-back of the policies now in force (the host reads the value
    /// when the stop begins), and a unit stop timeout shorter than that is logged as a warning at every load.
    /// </summary>
    private void ApplyShutdownBudget(IReadOnlyList<Policies.Model.PolicyDefinition> active)
    {
        var (wait, worst) = ShutdownBudget.For(active, LiveBackupSettings.From(config).ToOptions());
        if (hostOptions is not null) hostOptions.Value.ShutdownTimeout = wait;
        // Only under systemd (it sets INVOCATION_ID): elsewhere there is no stop timeout to compare with.
        if (Environment.GetEnvironmentVariable("INVOCATION_ID") is not { Length: > 0 }) return;
        var unit = ShutdownBudget.CurrentUnit();
        if (ShutdownBudget.Warning(wait, worst, ShutdownBudget.ReadUnitStopTimeout(unit), unit) is { } warning)
            logger.StopTimeoutTooShort(warning);
    }

    private FileSystemWatcher? WatchPolicies(ReloadSignal reload)
    {
        if (!Directory.Exists(config.PoliciesDirectory)) return null;
        var watcher = new FileSystemWatcher(config.PoliciesDirectory)
        {
            NotifyFilter = NotifyFilters.FileName | NotifyFilters.LastWrite | NotifyFilters.Size,
            IncludeSubdirectories = false,
        };
        FileSystemEventHandler changed = (_, e) => { if (IsPolicyFile(e.Name)) reload.Request(); };
        watcher.Changed += changed;
        watcher.Created += changed;
        watcher.Deleted += changed;
        watcher.Renamed += (_, e) => { if (IsPolicyFile(e.Name) || IsPolicyFile(e.OldName)) reload.Request(); };
        watcher.EnableRaisingEvents = true;
        return watcher;
    }

    private static bool IsPolicyFile(string? name) =>
        name is not null && !name.StartsWith('.') && (name.EndsWith(".yaml", StringComparison.Ordinal) || name.EndsWith(".yml", StringComparison.Ordinal));

    /// <summary>Before the first job: any domain left on an overlay by a crashed run is committed back and pivoted.</summary>
    private async Task RecoverLeftoversAsync(CancellationToken ct)
    {
        Notify("STATUS=recovering leftover overlays");
        try
        {
            using var hypervisor = await Task.Run(() => LibvirtHypervisor.Open(config.LibvirtUri), ct);
            var report = await new Recovery(hypervisor, new QemuImg(), LiveBackupSettings.From(config).ToOptions(), logger).RecoverAllAsync(dryRun: false, ct);
            if (report.Actions.Count > 0)
                logger.LeftoversRecovered(report.Actions.Count, report.AllResolved);
            // Interrupted chain shortens and disk moves too (issue 13): finished, pivoted or aborted before any backup runs.
            await new Chains.ChainRecovery(hypervisor, LiveBackupSettings.From(config).ToOptions(), logger).RecoverAsync(null, dryRun: false, ct);
        }
        catch (LibvirtException e)
        {
            logger.RecoverySkipped(e, config.LibvirtUri, e.Message);
        }
    }

    private void Notify(string state) => notifier?.Notify(new ServiceState(state));
}
