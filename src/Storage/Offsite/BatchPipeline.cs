using System.Collections.Concurrent;
using System.Diagnostics;

namespace Backupd.Storage.Offsite;

/// <summary>One step of a <see cref="BatchPipeline{T}"/>: run on several workers at once, or on one thread in submission order.</summary>
public sealed record PipelineStep<T>(string Name, bool Ordered, Action<T> Run);

/// <summary>
/// Overlaps the steps of a copy (read, name, ask, seal, send) over batches: every submitted item goes through the
/// steps in turn; a parallel step runs items on <c>workers</c> threads at once, an ordered step on its own thread
/// strictly in submission order (the store's questions and uploads, the index's id list). At most
/// <c>capacity</c> items are between <see cref="Submit"/> and the end of the last step — <see cref="Submit"/>
/// blocks until one leaves — so memory is that many batches whatever the file's size. The first failure of any
/// step stops the pipeline and is thrown by <see cref="Submit"/> or <see cref="Complete"/>.
/// </summary>
public sealed class BatchPipeline<T> : IDisposable
{
    private readonly IReadOnlyList<PipelineStep<T>> _steps;
    private readonly BlockingCollection<(long Seq, T Item)>[] _inputs;
    private readonly Thread[] _threads;
    private readonly SemaphoreSlim _room;
    private readonly CancellationTokenSource _stop;
    private readonly long[] _busyTicks;
    private readonly int[] _remaining; // per step, its threads still running
    private readonly Stopwatch _waitForRoom = new();
    private Exception? _failure;
    private long _next;
    private int _inFlight;
    private int _maxInFlight;
    private bool _completed;

    public BatchPipeline(IReadOnlyList<PipelineStep<T>> steps, int workers, int capacity, CancellationToken ct)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(workers, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(capacity, 1);
        _steps = steps;
        _room = new SemaphoreSlim(capacity, capacity);
        _stop = CancellationTokenSource.CreateLinkedTokenSource(ct);
        _busyTicks = new long[steps.Count];
        _inputs = steps.Select(_ => new BlockingCollection<(long, T)>(new ConcurrentQueue<(long, T)>())).ToArray();
        _remaining = steps.Select(s => s.Ordered ? 1 : workers).ToArray();
        var threads = new List<Thread>();
        for (var s = 0; s < steps.Count; s++)
        {
            var step = s;
            for (var w = 0; w < _remaining[s]; w++)
            {
                threads.Add(new Thread(() => Work(step)) { IsBackground = true, Name = $"copy {steps[step].Name}" });
            }
        }
        _threads = [.. threads];
        foreach (var t in _threads)
        {
            t.Start();
        }
    }

    /// <summary>The most items that were ever in the pipeline at once (never above its capacity).</summary>
    public int MaxInFlight => Volatile.Read(ref _maxInFlight);

    /// <summary>Per step, the time its threads spent running items (summed over a parallel step's workers).</summary>
    public IReadOnlyList<(string Step, TimeSpan Busy)> Busy =>
        _steps.Select((s, i) => (s.Name, TimeSpan.FromTicks(Interlocked.Read(ref _busyTicks[i])))).ToList();

    /// <summary>How long <see cref="Submit"/> waited for room: the producer (the reader) was ahead of the steps.</summary>
    public TimeSpan WaitedForRoom => _waitForRoom.Elapsed;

    /// <summary>Adds an item, waiting while the pipeline is full; throws the first failure of a step.</summary>
    public void Submit(T item)
    {
        ObjectDisposedException.ThrowIf(_completed, this);
        ThrowFailure();
        _waitForRoom.Start();
        try
        {
            _room.Wait(_stop.Token);
        }
        catch (OperationCanceledException)
        {
            ThrowFailure();
            throw;
        }
        finally
        {
            _waitForRoom.Stop();
        }
        var now = Interlocked.Increment(ref _inFlight);
        for (var seen = _maxInFlight; now > seen && Interlocked.CompareExchange(ref _maxInFlight, now, seen) != seen; seen = _maxInFlight)
        {
        }
        _inputs[0].Add((_next++, item));
    }

    /// <summary>Waits until every submitted item has gone through every step; throws the first failure.</summary>
    public void Complete()
    {
        if (!_completed)
        {
            _completed = true;
            _inputs[0].CompleteAdding();
        }
        foreach (var t in _threads)
        {
            t.Join();
        }
        ThrowFailure();
        _stop.Token.ThrowIfCancellationRequested();
    }

    private void ThrowFailure()
    {
        if (_failure is { } e)
        {
            System.Runtime.ExceptionServices.ExceptionDispatchInfo.Throw(e);
        }
    }

    private void Work(int step)
    {
        var input = _inputs[step];
        var ordered = _steps[step].Ordered;
        var waiting = new Dictionary<long, T>(); // an ordered step's items that came before their turn
        long turn = 0;
        try
        {
            foreach (var (seq, item) in input.GetConsumingEnumerable(_stop.Token))
            {
                if (!ordered)
                {
                    Run(step, seq, item);
                    continue;
                }
                waiting.Add(seq, item);
                while (waiting.Remove(turn, out var next))
                {
                    Run(step, turn, next);
                    turn++;
                }
            }
        }
        catch (OperationCanceledException) when (_stop.IsCancellationRequested)
        {
            // stopped: by a failure (recorded) or by the caller's token (thrown by Complete)
        }
#pragma warning disable CA1031 // any failure of a step is the copy's failure: recorded, rethrown to the producer
        catch (Exception e)
#pragma warning restore CA1031
        {
            Interlocked.CompareExchange(ref _failure, e, null);
            _stop.Cancel();
        }
        finally
        {
            if (Interlocked.Decrement(ref _remaining[step]) == 0 && step + 1 < _inputs.Length)
            {
                _inputs[step + 1].CompleteAdding(); // the last worker of a step closes the next step's input
            }
        }
    }

    private void Run(int step, long seq, T item)
    {
        var started = Stopwatch.GetTimestamp();
        _steps[step].Run(item);
        Interlocked.Add(ref _busyTicks[step], Stopwatch.GetElapsedTime(started).Ticks);
        if (step + 1 < _inputs.Length)
        {
            _inputs[step + 1].Add((seq, item));
            return;
        }
        Interlocked.Decrement(ref _inFlight);
        _room.Release();
    }

    public void Dispose()
    {
        if (!_completed)
        {
            _stop.Cancel();
            _completed = true;
            _inputs[0].CompleteAdding();
        }
        foreach (var t in _threads)
        {
            t.Join();
        }
        foreach (var i in _inputs)
        {
            i.Dispose();
        }
        _room.Dispose();
        _stop.Dispose();
    }
}
