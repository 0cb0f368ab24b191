using Backupd.Daemon.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;

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
        builder.Services.AddSingleton(config);
        builder.Services.AddHostedService<CatalogStartupService>();
        builder.Services.AddHostedService<DaemonService>();
        using var host = builder.Build();
        await host.RunAsync(ct);
    }
}
