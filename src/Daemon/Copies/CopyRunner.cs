using Backupd.Daemon.Offsite;
using Backupd.Daemon.Workflow;
using Backupd.Storage.Catalog;
using Backupd.Storage.Offsite;
using Backupd.Storage.Repository;
using Microsoft.Extensions.Logging;

namespace Backupd.Daemon.Copies;

/// <summary>One copy to make: a committed point of a local repository, to a target, with an optional wire rate.</summary>
public sealed record CopyJob(string PointId, string Repository, string Target, string? KeyPath, long? BytesPerSecond, string Trigger, string RequestedBy, string? PolicyName = null);

/// <summary>The catalog's view of the point being copied (for its run row and its point_copies row).</summary>
public sealed record CopiedPoint(Guid DomainUuid, string DomainName, DateTimeOffset CreatedAt);

/// <summary>
/// Runs one copy through the copy engine's entry point (<see cref="CopyRepository.Copy"/>), recorded as a run of kind
/// copy when a catalog and the point's domain are known: the run row first, the point_copies row in the transaction
/// that completes it. It only reads the local point, so a failure here never changes it.
/// </summary>
public sealed class CopyRunner(CatalogStore? catalog, ILogger logger)
{
    /// <summary>The name a target is recorded under: an ssh:// target as written, a local one as its full path.</summary>
    public static string TargetKey(string target)
    {
        var t = CopyTarget.Parse(target);
        return t.IsRemote ? t.Text : Path.TrimEndingDirectorySeparator(t.Path);
    }

    public async Task<(CopyReport Report, long? RunId)> RunAsync(CopyJob job, CopiedPoint? point, IProgress<long>? progress, CancellationToken ct)
    {
        var target = TargetKey(job.Target);
        long? runId = null;
        if (catalog is not null && point is not null)
        {
            runId = await catalog.StartCopyRunAsync(new RunStart(point.DomainUuid, point.DomainName, job.Trigger, job.RequestedBy, job.PolicyName, RunKinds.Copy),
                job.PointId, target, ProcessIdentity.Current, ct);
        }
        CopiesLog.CopyStarted(logger, job.PointId, target, runId ?? 0);
        try
        {
            var report = await Task.Run(() => Copy(job, progress, ct), ct);
            if (runId is { } id)
            {
                await catalog!.CompleteCopyRunAsync(id, new PointCopyRecord(job.PointId, target, point!.DomainUuid, point.DomainName, point.CreatedAt,
                    report.BytesRead, report.Chunks, report.ChunksSent, report.BytesSent + report.IndexBytes, report.Elapsed, report.AlreadyThere), ct);
            }
            CopiesLog.CopyFinished(logger, job.PointId, target, report.ChunksSent, report.BytesSent + report.IndexBytes, report.Elapsed.TotalSeconds);
            return (report, runId);
        }
        catch (Exception e)
        {
            CopiesLog.CopyFailed(logger, job.PointId, target, e.Message);
            if (runId is { } id)
            {
                var state = e is OperationCanceledException ? RunStates.Interrupted : RunStates.Failed;
                // The row must end even when the copy was cancelled: a fresh token for the last write.
                await catalog!.FailRunAsync(id, state, $"copy of {job.PointId} to {target}: {e.Message}", null, CancellationToken.None);
            }
            throw;
        }
    }

    private static CopyReport Copy(CopyJob job, IProgress<long>? progress, CancellationToken ct)
    {
        using var local = BackupRepository.Open(job.Repository);
        if (local.FindPoint(job.PointId) is null)
            throw new RestorePointNotFoundException($"restore point {job.PointId} does not exist in {job.Repository}");
        var key = OffsiteCli.LoadKey(job.KeyPath); // before connecting: a missing key fails before any ssh is started
        IChunkStore store = CopyTarget.Parse(job.Target).Connect();
        if (BandwidthLimiter.Create(job.BytesPerSecond) is { } limiter) store = new ThrottledChunkStore(store, limiter, ct);
        using var copy = OpenRepository(store, key);
        return copy.Copy(local, job.PointId, progress, ct);
    }

    private static CopyRepository OpenRepository(IChunkStore store, OffsiteKey key)
    {
        try
        {
            return CopyRepository.Open(store, key, create: true);
        }
        catch
        {
            store.Dispose();
            throw;
        }
    }
}
