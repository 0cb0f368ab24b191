using System.Diagnostics;
using Backupd.Daemon.Scheduling;

namespace Backupd.Daemon.Tests.Scheduling;

public class ReloadSignalTests
{
    [Fact]
    public async Task A_burst_of_requests_becomes_one_reload_after_the_quiet_period()
    {
        // Quiet period far above the gaps between requests, so a loaded machine cannot split the burst.
        var signal = new ReloadSignal(TimeSpan.FromMilliseconds(1500));
        var clock = Stopwatch.StartNew();
        var waiting = signal.WaitAsync(default);
        long lastRequest = 0;
        for (var i = 0; i < 5; i++)
        {
            signal.Request();
            lastRequest = clock.ElapsedMilliseconds;
            await Task.Delay(50);
        }
        Assert.False(waiting.IsCompleted);
        // The reload may not start before the quiet period after the last request.
        await waiting.WaitAsync(TimeSpan.FromSeconds(10));
        Assert.True(clock.ElapsedMilliseconds >= lastRequest + 1450, $"reloaded at {clock.ElapsedMilliseconds} ms, last request at {lastRequest} ms");
        // Consumed: the next wait needs a new request.
        var next = signal.WaitAsync(default);
        await Task.Delay(500);
        Assert.False(next.IsCompleted);
        signal.Request();
        await next.WaitAsync(TimeSpan.FromSeconds(10));
    }

    [Fact]
    public async Task Waiting_is_cancellable()
    {
        var signal = new ReloadSignal(TimeSpan.FromMilliseconds(100));
        using var cts = new CancellationTokenSource(200);
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => signal.WaitAsync(cts.Token));
    }
}
