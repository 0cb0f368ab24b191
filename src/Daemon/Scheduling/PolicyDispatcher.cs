using System.Collections.Concurrent;
using Backupd.Policies.Model;
using Microsoft.Extensions.Logging;

namespace Backupd.Daemon.Scheduling;

/// <summary>What happened to one domain when a policy fired.</summary>
public enum DomainOutcome { Succeeded, Failed, Skipped, Cancelled }

/// <summary>The result of one fire of one policy.</summary>
public sealed record FireResult(string Policy, DateTimeOffset ScheduledAt, IReadOnlyDictionary<string, DomainOutcome> Domains, string? Error = null);

/// <summary>
/// Turns a schedule fire into backups: resolves the policy's domains on its hypervisor, then runs
/// the backup runner for each within the <see cref="RunGate"/> limits. Holds the current version
/// of every policy (jobs carry only the policy name, so a reload takes effect at the next fire).
/// </summary>
public sealed class PolicyDispatcher(IBackupRunner runner, IDomainSource domains, RunGate gate, string defaultUri, ScheduleState state, ILogger logger)
{
    /// <summary>Runs `verify.schedule` fires; without one they are logged and skipped.</summary>
    public IRestorePointVerifier? Verifier { get; init; }

    /// <summary>Runs `drill:` fires; without one they are skipped.</summary>
    public IRestoreDriller? Driller { get; init; }

    private readonly ConcurrentDictionary<string, PolicyDefinition> _policies = new(StringComparer.Ordinal);

    public RunGate Gate => gate;

    /// <summary>Replaces the set of policies fires are resolved against.</summary>
    public void SetPolicies(IEnumerable<PolicyDefinition> policies)
    {
        var fresh = policies.ToDictionary(p => p.Name, StringComparer.Ordinal);
        foreach (var name in _policies.Keys.Where(n => !fresh.ContainsKey(n))) _policies.TryRemove(name, out _);
        foreach (var (name, policy) in fresh) _policies[name] = policy;
    }

    public PolicyDefinition? Find(string name) => _policies.TryGetValue(name, out var p) ? p : null;

    /// <summary>Runs one fire of <paramref name="policyName"/> (scheduled at <paramref name="scheduledAt"/>) to completion.</summary>
    public async Task<FireResult> FireAsync(string policyName, DateTimeOffset scheduledAt, CancellationToken ct)
    {
        if (Find(policyName) is not { } policy)
            return new FireResult(policyName, scheduledAt, new Dictionary<string, DomainOutcome>(), "policy no longer loaded");
        state.RecordFire(policy.Name, scheduledAt);
        var uri = policy.Connection ?? defaultUri;
        IReadOnlyList<string> selected;
        try
        {
            selected = policy.Domains.SelectFrom(await domains.ListDomainsAsync(uri, ct));
        }
        catch (Exception e) when (e is not OperationCanceledException)
        {
            logger.DomainListFailed(e, policy.Name, uri, e.Message);
            return new FireResult(policy.Name, scheduledAt, new Dictionary<string, DomainOutcome>(), e.Message);
        }
        if (selected.Count == 0) logger.NoDomainMatches(policy.Name, uri, string.Join(", ", policy.Domains.Include));
        var outcomes = new ConcurrentDictionary<string, DomainOutcome>(StringComparer.Ordinal);
        await Task.WhenAll(selected.Select(domain => RunOneAsync(policy, uri, domain, outcomes, ct)));
        return new FireResult(policy.Name, scheduledAt, outcomes);
    }

    /// <summary>
    /// A fire of a policy's verify schedule: verification of its repository's points, within the global limit.
    /// Like a backup fire, it follows the policy as loaded now: a fire that Quartz released just before a reload
    /// removed the policy's `verify.schedule` (or the policy) does not verify.
    /// </summary>
    public async Task<bool?> VerifyAsync(string policyName, CancellationToken ct)
    {
        if (Find(policyName) is not { Verify.Schedule: not null } policy || Verifier is null) return null;
        try
        {
            using (await gate.EnterAsync($"{policy.Name}\nverify", 1, ct))
            {
                logger.VerifyStarting(policy.Name, policy.Repository);
                var ok = await Verifier.VerifyAsync(policy, ct);
                if (ok) logger.VerifyAllIntact(policy.Name);
                else logger.VerifyFoundDamage(policy.Name);
                return ok;
            }
        }
        catch (OperationCanceledException) when (ct.IsCancellationRequested)
        {
            return null;
        }
        catch (Exception e)
        {
            logger.VerifyFailed(e, policy.Name, e.Message);
            return false;
        }
    }

    /// <summary>A fire of a policy's drill schedule: one drill per selected domain, one at a time, within the global limit.</summary>
    public async Task<bool?> DrillAsync(string policyName, CancellationToken ct)
    {
        if (Find(policyName) is not { Drill: not null } policy || Driller is null) return null;
        try
        {
            using (await gate.EnterAsync($"{policy.Name}\ndrill", 1, ct))
                return await Driller.DrillAsync(policy, ct);
        }
        catch (OperationCanceledException) when (ct.IsCancellationRequested)
        {
            return null;
        }
        catch (Exception e)
        {
            logger.DrillsFailed(e, policy.Name, e.Message);
            return false;
        }
    }

    private async Task RunOneAsync(PolicyDefinition policy, string uri, string domain, ConcurrentDictionary<string, DomainOutcome> outcomes, CancellationToken ct)
    {
        if (!gate.TryClaimDomain(uri, domain, policy.Name, out var holder))
        {
            logger.DomainSkippedStillRunning(policy.Name, domain, holder);
            outcomes[domain] = DomainOutcome.Skipped;
            return;
        }
        try
        {
            using (await gate.EnterAsync(policy.Name, policy.MaxParallel, ct))
            {
                logger.BackupStarting(policy.Name, domain);
                await runner.RunAsync(policy, domain, [.. _policies.Values], ct);
            }
            outcomes[domain] = DomainOutcome.Succeeded;
            logger.BackupDone(policy.Name, domain);
        }
        catch (Workflow.BackupRefusedException e) when (e.Kind == Workflow.RefusalKind.Busy)
        {
            // e.g. a long verify or restore of the VM's group outlasted the reader wait: nothing was done; the next fire tries again.
            outcomes[domain] = DomainOutcome.Skipped;
            logger.DomainSkippedBusy(policy.Name, domain, e.Message);
        }
        catch (Exception e) when (ct.IsCancellationRequested && Runs.BackupFailedException.IsInterruption(e))
        {
            outcomes[domain] = DomainOutcome.Cancelled;
            logger.BackupCancelled(policy.Name, domain);
        }
        catch (Exception e)
        {
            outcomes[domain] = DomainOutcome.Failed;
            logger.BackupFailed(e, policy.Name, domain, e.Message);
        }
        finally
        {
            gate.ReleaseDomain(uri, domain);
        }
    }
}
