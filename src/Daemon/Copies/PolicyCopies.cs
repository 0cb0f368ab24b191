using Backupd.Policies.Model;
using Backupd.Storage.Catalog;
using Microsoft.Extensions.Logging;

namespace Backupd.Daemon.Copies;

/// <summary>
/// A policy's `copies:` after one of its backups: the new point goes to each target in turn, each attempt a run of
/// kind copy, a failed one retried after the target's retry-delay, doubled each time. It runs after the domain lock is
/// released (a copy over a WAN can take hours and only reads the committed point: holding the lock would only keep the
/// next backup and chain maintenance of the VM waiting). Nothing here throws: a copy that fails for good is logged and
/// recorded as its failed runs, and never fails or changes the local point.
/// </summary>
public sealed class PolicyCopies(CatalogStore catalog, ILogger logger)
{
    /// <summary>Test seam: how a back-off is waited for.</summary>
    internal Func<TimeSpan, CancellationToken, Task> Delay { get; init; } = Task.Delay;

    public async Task RunAsync(PolicyDefinition policy, string pointId, string repository, CopiedPoint point, CancellationToken ct)
    {
        var runner = new CopyRunner(catalog, logger);
        foreach (var destination in policy.Copies)
        {
            var job = new CopyJob(pointId, repository, destination.Target, destination.Key, destination.Bandwidth, "policy", "backupd daemon", policy.Name);
            for (var attempt = 0; ; attempt++)
            {
                try
                {
                    await runner.RunAsync(job, point, null, ct);
                    break;
                }
                catch (OperationCanceledException) when (ct.IsCancellationRequested)
                {
                    return; // the daemon is stopping: the run row says interrupted, the next backup's copy sends what is missing
                }
                catch (Exception e)
                {
                    if (attempt >= destination.Retries)
                    {
                        CopiesLog.CopyGaveUp(logger, policy.Name, pointId, destination.Target, attempt + 1, e.Message);
                        break;
                    }
                    var wait = destination.BackOff(attempt + 1);
                    CopiesLog.CopyRetrying(logger, policy.Name, pointId, destination.Target, wait.TotalSeconds, attempt + 1, destination.Retries);
                    try { await Delay(wait, ct); }
                    catch (OperationCanceledException) { return; }
                }
            }
        }
    }
}
