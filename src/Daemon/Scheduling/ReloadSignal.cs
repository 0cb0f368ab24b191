namespace Backupd.Daemon.Scheduling;

/// <summary>
/// Coalesces reload requests (SIGHUP, file-change events) into one reload after a quiet period:
/// an editor saving a file fires several events, and a half-written file must not be loaded.
/// </summary>
public sealed class ReloadSignal(TimeSpan quiet)
{
    private readonly Lock _lock = new();
    private TaskCompletionSource _pending = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private long _lastRequest;

    public void Request()
    {
        lock (_lock)
        {
            _lastRequest = Environment.TickCount64;
            _pending.TrySetResult();
        }
    }

    /// <summary>Completes once a request came and no further request arrived for the quiet period.</summary>
    public async Task WaitAsync(CancellationToken ct)
    {
        Task pending;
        lock (_lock) pending = _pending.Task;
        await pending.WaitAsync(ct);
        while (true)
        {
            TimeSpan remaining;
            lock (_lock)
            {
                remaining = quiet - TimeSpan.FromMilliseconds(Environment.TickCount64 - _lastRequest);
                // Quiet long enough: consume the requests in the same lock as the check, so a request that
                // arrives now is not swallowed by the reset but starts the next wait.
                if (remaining <= TimeSpan.Zero)
                {
                    if (_pending.Task.IsCompleted) _pending = new(TaskCreationOptions.RunContinuationsAsynchronously);
                    return;
                }
            }
            await Task.Delay(remaining, ct);
        }
    }
}
