using Backupd.Daemon.Scheduling;
using Backupd.Policies.Model;
using Backupd.Storage.Catalog;
using Backupd.Storage.Repository;
using Microsoft.Extensions.Logging;

namespace Backupd.Daemon.Maintenance;

/// <summary>
/// Verifies restore points against the repository and records each outcome as a catalog event: the new point right
/// after its backup (policy `verify.after-backup`) and every kept point on the policy's `verify.schedule`. Lives
/// beside retention, not in Scheduling, because it needs no scheduler: the scheduler and the commands call it alike.
/// </summary>
public sealed class PointVerifier(CatalogStore catalog, ILogger log) : IRestorePointVerifier
{
    /// <summary>Metrics and notifications hear every outcome (damage found is a notification).</summary>
    public Observability.RunObservers? Observers { get; init; }

    /// <summary>Verifies the point a backup just committed; false when it is damaged.</summary>
    public async Task<bool> VerifyNewAsync(PolicyDefinition policy, Guid domainUuid, string domainName, string pointId, CancellationToken ct)
    {
        using var repo = BackupRepository.Open(policy.Repository);
        var report = await repo.VerifyAsync(domainUuid.ToString(), pointId, null, ct);
        await catalog.RecordEventAsync(EventKinds.Verify, domainUuid, pointId, report.Ok,
            report.Ok ? $"verified after backup: {report.VersionsChecked} file versions" : string.Join("; ", report.Problems), ProcessIdentity.Current, CancellationToken.None);
        Observers?.Verified(domainName, policy.Name, pointId, report.Ok, report.Ok ? "verified after backup" : string.Join("; ", report.Problems));
        if (report.Ok) log.PointVerified(policy.Name, pointId);
        else log.NewPointDamaged(policy.Name, pointId, string.Join("; ", report.Problems));
        return report.Ok;
    }

    /// <summary>Verifies every point of every group of the repository whose domain the policy selects; one catalog event per recorded point.</summary>
    public async Task<bool> VerifyAsync(PolicyDefinition policy, CancellationToken ct)
    {
        var ok = true;
        foreach (var (group, domain, points) in new RepositoryPointStore(catalog).ListGroups(policy.Repository))
        {
            if (!policy.Domains.Matches(domain)) continue;
            using var repo = BackupRepository.Open(policy.Repository);
            var uuid = Guid.TryParse(group, out var g) ? g : (Guid?)null;
            var recorded = uuid is null ? [] : (await catalog.ListPointsAsync(uuid, null, ct)).Select(p => p.Id).ToHashSet(StringComparer.Ordinal);
            foreach (var point in points)
            {
                var report = await repo.VerifyAsync(group, point.Id, null, ct);
                ok &= report.Ok;
                Observers?.Verified(domain, policy.Name, point.Id, report.Ok, report.Ok ? "scheduled verify" : string.Join("; ", report.Problems));
                if (!report.Ok) log.KeptPointDamaged(policy.Name, point.Id, domain, string.Join("; ", report.Problems));
                if (recorded.Contains(point.Id))
                    await catalog.RecordEventAsync(EventKinds.Verify, uuid, point.Id, report.Ok,
                        report.Ok ? $"scheduled verify: {report.VersionsChecked} file versions" : string.Join("; ", report.Problems), ProcessIdentity.Current, CancellationToken.None);
            }
        }
        return ok;
    }
}
