using System.Collections.Concurrent;
using Backupd.Daemon.Runs;
using Microsoft.Extensions.Logging;

namespace Backupd.Daemon.Observability;

/// <summary>One journal line per 10 % of each run's copy or commit step (the catalog row alone is invisible in the journal).</summary>
public sealed class ProgressJournal(ILogger<ProgressJournal> log) : IRunObserver
{
    private readonly ConcurrentDictionary<long, (string Step, int Tenth)> _last = new();

    public void Started(ObservedRun run) { }

    public void Progress(ObservedRun run, RunProgress progress)
    {
        if (progress.TotalBytes is not > 0 || progress.Step is not ("copy" or "commit")) return;
        var tenth = (int)Math.Min(10, progress.Bytes * 10 / progress.TotalBytes.Value);
        var previous = _last.GetValueOrDefault(run.Key, (Step: progress.Step, Tenth: -1));
        if (previous.Step == progress.Step && tenth <= previous.Tenth) return;
        _last[run.Key] = (progress.Step, tenth);
        log.ProgressLine(run.Domain, progress.Step, tenth * 10, progress.Bytes, progress.TotalBytes.Value);
    }

    public void Finished(ObservedRun run, RunEnd outcome) => _last.TryRemove(run.Key, out _);

    public void Verified(string domain, string? policy, string pointId, bool ok, string detail) { }
}
