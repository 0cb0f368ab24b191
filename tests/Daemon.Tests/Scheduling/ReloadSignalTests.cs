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
        // Read the clock the moment the wait ends (not when this test gets to look, which may be later).
        var reloadedAt = waiting.ContinueWith(_ => clock.ElapsedMilliseconds, CancellationToken.None, TaskContinuationOptions.ExecuteSynchronously, TaskScheduler.Default);
        long lastRequest = 0;
        for (var i = 0; i < 5; i++)
        {
            // Read before the request: a pause around Request() can only loosen the bound, never raise it.
            lastRequest = clock.ElapsedMilliseconds;
            signal.Request();
            await Task.Delay(50);
        }
        Assert.False(waiting.IsCompleted);
        // The reload may not start before the quiet period after the last request
        // (50 ms of slack for the coarse tick count the signal measures with).
        var at = await reloadedAt.WaitAsync(TimeSpan.FromSeconds(10));
        Assert.True(waiting.IsCompletedSuccessfully);
        Assert.True(at >= lastRequest + 1450, $"reloaded at {at} ms, last request at {lastRequest} ms");
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
