using System.Diagnostics;
using Backupd.Daemon.Scheduling;

namespace Backupd.Daemon.Tests.Scheduling;

public class ReloadSignalTests
{
    [Fact]
    public async Task A_burst_of_requests_becomes_one_reload_after_the_quiet_period()
    {
        var signal = new ReloadSignal(TimeSpan.FromMilliseconds(300));
        var clock = Stopwatch.StartNew();
        var waiting = signal.WaitAsync(default);
        for (var i = 0; i < 5; i++)
        {
            signal.Request();
            await Task.Delay(100);
        }
        // The last request came at ~400 ms: the reload may not start before ~700 ms.
        await waiting.WaitAsync(TimeSpan.FromSeconds(5));
        Assert.True(clock.ElapsedMilliseconds >= 650, $"reloaded after {clock.ElapsedMilliseconds} ms, inside the quiet period");
        // Consumed: the next wait needs a new request.
        var next = signal.WaitAsync(default);
        await Task.Delay(500);
        Assert.False(next.IsCompleted);
        signal.Request();
        await next.WaitAsync(TimeSpan.FromSeconds(5));
    }

    [Fact]
    public async Task Waiting_is_cancellable()
    {
        var signal = new ReloadSignal(TimeSpan.FromMilliseconds(100));
        using var cts = new CancellationTokenSource(200);
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => signal.WaitAsync(cts.Token));
    }
}
