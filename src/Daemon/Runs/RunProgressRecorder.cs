using Backupd.Storage.Catalog;

namespace Backupd.Daemon.Runs;

/// <summary>
/// Takes the workflow's progress reports (which may come many times a second from the copy loop),
/// forwards them to an optional observer (a progress bar), and writes the newest one to the run's
/// catalog row at most once per <see cref="Interval"/>, so `backupd status` can show a percentage.
/// A new step is written at once, before the step's work starts, so a run that dies shows the step it died in.
/// </summary>
public sealed class RunProgressRecorder : IProgress<RunProgress>, IAsyncDisposable
{
    public static readonly TimeSpan Interval = TimeSpan.FromSeconds(1);

    private readonly CatalogStore _catalog;
    private readonly long _runId;
    private readonly IProgress<RunProgress>? _observer;
    private readonly CancellationTokenSource _stop = new();
    private readonly Task _loop;
    private RunProgress? _latest;
    private RunProgress? _written;
    private int _disposed;

    public RunProgressRecorder(CatalogStore catalog, long runId, IProgress<RunProgress>? observer)
    {
        _catalog = catalog;
        _runId = runId;
        _observer = observer;
        _loop = Task.Run(LoopAsync);
    }

    public RunProgress? Latest => Volatile.Read(ref _latest);

    public void Report(RunProgress value)
    {
        var previous = Interlocked.Exchange(ref _latest, value);
        if (previous?.Step != value.Step)
        {
            // Rare (a handful per run) and must not be lost to a crash right after: write it synchronously.
            try
            {
                using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(5));
                _catalog.UpdateProgressAsync(_runId, value.Step, value.Bytes, value.TotalBytes, timeout.Token).GetAwaiter().GetResult();
            }
            catch (Exception e) when (e is Npgsql.NpgsqlException or OperationCanceledException)
            {
                // Best effort, like the periodic writes: the backup matters more than its progress row.
            }
        }
        _observer?.Report(value);
    }

    /// <summary>Writes the newest report now (before the run's final state is recorded).</summary>
    public async Task FlushAsync(CancellationToken ct)
    {
        var latest = Latest;
        if (latest is null || latest == _written) return;
        await _catalog.UpdateProgressAsync(_runId, latest.Step, latest.Bytes, latest.TotalBytes, ct);
        _written = latest;
    }

    private async Task LoopAsync()
    {
        while (!_stop.IsCancellationRequested)
        {
            try
            {
                await Task.Delay(Interval, _stop.Token);
                await FlushAsync(_stop.Token);
            }
            catch (OperationCanceledException)
            {
                return;
            }
            catch (Npgsql.NpgsqlException)
            {
                // Progress is best effort: a catalog hiccup must not fail the backup. The final state is written separately.
            }
        }
    }

    public async ValueTask DisposeAsync()
    {
        if (Interlocked.Exchange(ref _disposed, 1) == 1) return;
        await _stop.CancelAsync();
        await _loop;
        _stop.Dispose();
    }
}
