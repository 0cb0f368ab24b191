using Backupd.Daemon.Configuration;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

namespace Backupd.Daemon.Hosting;

/// <summary>The daemon's main loop. For now it announces itself and waits for the stop signal.</summary>
public sealed class DaemonService(DaemonConfig config, ILogger<DaemonService> logger) : BackgroundService
{
    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        logger.DaemonStarted(
            config.SourcePath, config.LibvirtUri, config.StateDirectory);
        try
        {
            await Task.Delay(Timeout.Infinite, stoppingToken);
        }
        catch (OperationCanceledException)
        {
            logger.DaemonStopping();
        }
    }
}
