using System.Diagnostics;
using System.Globalization;
using Backupd.Integration.Fixtures;

namespace Backupd.Integration;

public sealed class DaemonProcessTests(PostgresDatabase database) : IClassFixture<PostgresDatabase>
{
    [Fact]
    public async Task Daemon_notifies_READY_logs_and_stops_cleanly_with_STOPPING_on_SIGTERM()
    {
        using var config = new TempConfig(database.ConnectionString);
        using var notify = new NotifySocket();
        using var process = BackupdProcess.StartCollecting(
            new Dictionary<string, string> { ["NOTIFY_SOCKET"] = notify.Path }, out var output, "--config", config.Path, "daemon");
        try
        {
            Assert.Equal("READY=1", await notify.ReceiveAsync(TimeSpan.FromSeconds(60)));
            await Eventually.WaitUntilAsync(() => output.Any(l => l.Contains("backupd daemon started", StringComparison.Ordinal)), TimeSpan.FromSeconds(60), "the start log line", output);

            await Tools.RunAsync("kill", "-TERM", process.Id.ToString(CultureInfo.InvariantCulture));

            Assert.Equal("STOPPING=1", await notify.ReceiveAsync(TimeSpan.FromSeconds(30)));
            using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(30));
            await process.WaitForExitAsync(timeout.Token);
            Assert.Equal(0, process.ExitCode);
            Assert.Contains(output, l => l.Contains("backupd daemon stopping", StringComparison.Ordinal));
        }
        finally
        {
            if (!process.HasExited) process.Kill(entireProcessTree: true);
        }
    }
}
