using Backupd.Daemon.Configuration;
using Backupd.Daemon.Scheduling;
using Backupd.Daemon.Workflow;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Hosting.Systemd;

namespace Backupd.Daemon.Hosting;

/// <summary>Builds the daemon's generic host: systemd integration (notify READY/STOPPING, journal log format) and services.</summary>
public static class DaemonHost
{
    public static async Task RunAsync(DaemonConfig config, CancellationToken ct)
    {
        var builder = Host.CreateApplicationBuilder(new HostApplicationBuilderSettings
        {
            ApplicationName = "backupd",
            ContentRootPath = AppContext.BaseDirectory,
            Args = [],
        });
        builder.Services.AddSystemd();
        // AddSystemd only notifies when the parent process is systemd. Honour NOTIFY_SOCKET whoever set it
        // (a supervisor wrapper, systemd-run under a shell, our tests), so READY/STOPPING always reach it.
        if (!SystemdHelpers.IsSystemdService() && Environment.GetEnvironmentVariable("NOTIFY_SOCKET") is { Length: > 0 })
            builder.Services.AddSingleton<IHostLifetime, SystemdLifetime>();
        // Either way the notifications go through a sender that cannot block the SIGTERM path (NonBlockingNotifier).
        builder.Services.Replace(ServiceDescriptor.Singleton<ISystemdNotifier>(_ => new NonBlockingNotifier()));
        // A stop cancels copies but waits for every running backup to commit and pivot back. The host's
        // default 30 s would abandon a merge-back: the wait is the loaded policies' worst merge-back
        // (ShutdownBudget), set here for no policies and again by SchedulingService at every (re)load.
        builder.Services.Configure<HostOptions>(o => o.ShutdownTimeout = ShutdownBudget.For([], LiveBackupSettings.From(config).ToOptions()).Wait);
        builder.Services.AddSingleton(config);
        builder.Services.AddHostedService<CatalogStartupService>();
        builder.Services.AddHostedService<DaemonService>();
        builder.Services.AddSingleton<IBackupRunner, CatalogBackupRunner>();
        builder.Services.AddSingleton<IDomainSource, LibvirtDomainSource>();
        builder.Services.AddHostedService<SchedulingService>();
        AddObservability(builder.Services, config);
        using var host = builder.Build();
        await host.RunAsync(ct);
    }

    /// <summary>Metrics, notifications, STATUS= and the HTTP listener: observers of every scheduled run (issue 14).</summary>
    internal static void AddObservability(IServiceCollection services, DaemonConfig config)
    {
        services.AddSingleton(TimeProvider.System);
        services.AddSingleton(_ => new Storage.Catalog.CatalogStore(config.CatalogConnectionString));
        services.AddSingleton<Observability.PolicyView>();
        services.AddSingleton<Observability.RunTracker>();
        services.AddSingleton<Observability.HealthSnapshot>();
        services.AddSingleton<Observability.BackupdMetrics>();
        services.AddSingleton(sp => { sp.GetRequiredService<Observability.BackupdMetrics>(); return new Observability.PrometheusExporter(Observability.BackupdMetrics.MeterName); });
        services.AddSingleton<Observability.ProgressJournal>();
        services.AddSingleton<Observability.SystemdStatus>();
        services.AddSingleton(sp => new Notifications.Notifier(new HttpClient { Timeout = TimeSpan.FromSeconds(30) }, sp.GetRequiredService<Microsoft.Extensions.Logging.ILogger<Notifications.Notifier>>()));
        services.AddSingleton<Notifications.NotificationDispatcher>();
        services.AddHostedService(sp => sp.GetRequiredService<Notifications.NotificationDispatcher>());
        // The tracker first: the others read its view of the running jobs.
        services.AddSingleton(sp => new Observability.RunObservers([
            sp.GetRequiredService<Observability.RunTracker>(), sp.GetRequiredService<Observability.BackupdMetrics>(),
            sp.GetRequiredService<Observability.ProgressJournal>(), sp.GetRequiredService<Observability.SystemdStatus>(),
            sp.GetRequiredService<Notifications.NotificationDispatcher>()]));
        if (config.Http is { } http)
        {
            services.AddSingleton(http);
            services.AddSingleton<Web.StatusReader>();
            services.AddSingleton<Web.WebListener>();
            services.AddHostedService(sp => sp.GetRequiredService<Web.WebListener>());
        }
    }
}
