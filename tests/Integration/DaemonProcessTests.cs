using System.Diagnostics;
using System.Globalization;
using Backupd.Integration.Fixtures;

namespace Backupd.Integration;

[Trait("Category", "Integration")]
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

    [Fact]
    public async Task A_fifo_in_the_policies_directory_is_reported_and_SIGTERM_still_stops_the_daemon_promptly()
    {
        using var config = new TempConfig(database.ConnectionString);
        var fifo = Path.Combine(config.PoliciesDirectory, "stuck.yaml");
        await Tools.RunAsync("mkfifo", fifo);
        using var notify = new NotifySocket();
        using var process = BackupdProcess.StartCollecting(
            new Dictionary<string, string> { ["NOTIFY_SOCKET"] = notify.Path }, out var output, "--config", config.Path, "daemon");
        try
        {
            Assert.Equal("READY=1", await notify.ReceiveAsync(TimeSpan.FromSeconds(60)));
            await Eventually.WaitUntilAsync(() => output.Any(l => l.Contains($"{fifo}:1:1: is a FIFO", StringComparison.Ordinal)), TimeSpan.FromSeconds(60), "the FIFO reported", output);

            // A change in the directory makes the daemon load again (the FIFO again) while it is told to stop.
            await File.WriteAllTextAsync(Path.Combine(config.PoliciesDirectory, "other.yaml"), "name: x\n");
            await Tools.RunAsync("kill", "-TERM", process.Id.ToString(CultureInfo.InvariantCulture));

            using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(15));
            var clock = Stopwatch.StartNew();
            await process.WaitForExitAsync(timeout.Token);
            Assert.Equal(0, process.ExitCode);
            Assert.True(clock.Elapsed < TimeSpan.FromSeconds(15), $"stopping took {clock.Elapsed}");
        }
        finally
        {
            if (!process.HasExited) process.Kill(entireProcessTree: true);
        }
    }
}
