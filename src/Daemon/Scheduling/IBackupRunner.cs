using Backupd.Policies.Model;

namespace Backupd.Daemon.Scheduling;

/// <summary>
/// Runs one scheduled backup of one domain: the live-backup workflow, then retention prune and
/// verify as the policy asks. The scheduler decides when and how many at once; the runner does
/// the work. Cancellation means "stop soon": a runner in its copy step cancels the copy and still
/// commits and pivots before returning.
/// </summary>
public interface IBackupRunner
{
    /// <param name="peers">The other loaded policies (retention leaves alone a domain another policy also backs up into the same repository).</param>
    Task RunAsync(PolicyDefinition policy, string domain, IReadOnlyCollection<PolicyDefinition> peers, CancellationToken ct);
}

/// <summary>The domain names defined on a hypervisor, asked each time a schedule fires (VMs come and go).</summary>
public interface IDomainSource
{
    Task<IReadOnlyList<string>> ListDomainsAsync(string uri, CancellationToken ct);
}

/// <summary>Runs a policy's scheduled restore drills (`drill:`), recording each one.</summary>
public interface IRestoreDriller
{
    /// <summary>Drills the newest point of every domain the policy selects in its repository; true when every drill passed.</summary>
    Task<bool> DrillAsync(PolicyDefinition policy, CancellationToken ct);
}

/// <summary>Verifies the restore points a policy keeps (its `verify.schedule`), recording the outcome.</summary>
public interface IRestorePointVerifier
{
    /// <summary>Verifies every restore point of the domains the policy selects in its repository; true when all are intact.</summary>
    Task<bool> VerifyAsync(PolicyDefinition policy, CancellationToken ct);
}
