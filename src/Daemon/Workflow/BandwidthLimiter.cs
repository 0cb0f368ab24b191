using System.Diagnostics;

namespace Backupd.Daemon.Workflow;

/// <summary>
/// Pure token bucket: <paramref name="bytesPerSecond"/> tokens accrue per second up to one second's worth
/// (the largest burst after an idle spell). It starts empty, so N bytes never pass in less than N/rate.
/// A take larger than the balance is allowed and goes into debt: the caller waits until the debt is paid,
/// so reads bigger than the bucket (8 MiB windows at 1 MiB/s) still work at the right average rate.
/// </summary>
public sealed class TokenBucket
{
    private readonly double _rate;
    private readonly double _capacity;
    private double _tokens;
    private TimeSpan _last;

    public TokenBucket(long bytesPerSecond, TimeSpan now)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(bytesPerSecond);
        _rate = bytesPerSecond;
        _capacity = bytesPerSecond;
        _last = now;
    }

    /// <summary>Takes <paramref name="bytes"/> at <paramref name="now"/> (monotonic); how long to wait before using them.</summary>
    public TimeSpan Take(long bytes, TimeSpan now)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(bytes);
        if (now > _last)
        {
            _tokens = Math.Min(_capacity, _tokens + (_rate * (now - _last).TotalSeconds));
            _last = now;
        }
        _tokens -= bytes;
        return _tokens >= 0 ? TimeSpan.Zero : TimeSpan.FromSeconds(-_tokens / _rate);
    }
}

/// <summary>
/// Throttles one run's copy to a byte rate: the repository awaits <see cref="WaitAsync"/> before each read
/// (see <c>BackupSession.AddFileAsync</c>'s readThrottle), so the source disks see the limit, holes cost
/// nothing, and no thread is blocked while waiting. One instance per run: every file of the run shares the rate.
/// </summary>
public sealed class BandwidthLimiter
{
    private readonly TokenBucket _bucket;
    private readonly Stopwatch _clock = new(); // started by the first read: the bucket is empty then, not earlier
    private readonly Lock _gate = new();

    public BandwidthLimiter(long bytesPerSecond)
    {
        BytesPerSecond = bytesPerSecond;
        _bucket = new TokenBucket(bytesPerSecond, TimeSpan.Zero);
    }

    public long BytesPerSecond { get; }

    public async ValueTask WaitAsync(long bytes, CancellationToken ct)
    {
        TimeSpan releaseAt;
        lock (_gate)
        {
            if (!_clock.IsRunning) _clock.Start();
            var now = _clock.Elapsed;
            releaseAt = now + _bucket.Take(bytes, now);
        }
        // Task.Delay may end a millisecond or two early (it runs on the coarse tick count and truncates to
        // whole milliseconds): wait on this limiter's own clock, so N bytes really never pass in less than N/rate.
        for (var left = releaseAt - _clock.Elapsed; left > TimeSpan.Zero; left = releaseAt - _clock.Elapsed)
            await Task.Delay(TimeSpan.FromMilliseconds(Math.Ceiling(left.TotalMilliseconds)), ct);
    }

    /// <summary>Null for no limit (null or 0), so callers pass <c>Create(rate)?.WaitAsync</c>.</summary>
    public static BandwidthLimiter? Create(long? bytesPerSecond) => bytesPerSecond is > 0 ? new BandwidthLimiter(bytesPerSecond.Value) : null;
}
