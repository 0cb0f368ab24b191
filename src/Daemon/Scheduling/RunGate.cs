using System.Collections.Concurrent;

namespace Backupd.Daemon.Scheduling;

/// <summary>
/// The three concurrency limits of scheduled runs: a global limit (the daemon's max-parallel),
/// a per-policy limit (the policy's max-parallel), and at most one run per domain. A domain that
/// is already being backed up (or waiting for a slot) is skipped, not queued: the run in progress
/// already covers it. The catalog's advisory lock additionally covers CLI runs and other hosts.
/// </summary>
public sealed class RunGate(int globalLimit) : IDisposable
{
    private readonly SemaphoreSlim _global = new(globalLimit, globalLimit);
    private readonly ConcurrentDictionary<string, SemaphoreSlim> _policies = new(StringComparer.Ordinal);
    private readonly ConcurrentDictionary<string, string> _domains = new(StringComparer.Ordinal);

    public int GlobalLimit => globalLimit;

    /// <summary>Claims <paramref name="domain"/> for <paramref name="policy"/>; false (with the holder) when it is already claimed.</summary>
    public bool TryClaimDomain(string uri, string domain, string policy, out string holder)
    {
        if (_domains.TryAdd(DomainKey(uri, domain), policy))
        {
            holder = policy;
            return true;
        }
        holder = _domains.TryGetValue(DomainKey(uri, domain), out var current) ? current : "another run";
        return false;
    }

    public void ReleaseDomain(string uri, string domain) => _domains.TryRemove(DomainKey(uri, domain), out _);

    /// <summary>Domains claimed right now (for status and tests).</summary>
    public int ClaimedDomains => _domains.Count;

    /// <summary>Waits for a policy slot, then a global slot. Dispose the result to release both.</summary>
    public async Task<IDisposable> EnterAsync(string policy, int policyLimit, CancellationToken ct)
    {
        // A policy's limit can change on reload: a new limit gets a fresh semaphore.
        var slots = _policies.GetOrAdd($"{policy}\n{policyLimit}", _ => new SemaphoreSlim(policyLimit, policyLimit));
        await slots.WaitAsync(ct);
        try
        {
            await _global.WaitAsync(ct);
        }
        catch
        {
            slots.Release();
            throw;
        }
        return new Release(() => { _global.Release(); slots.Release(); });
    }

    public void Dispose()
    {
        _global.Dispose();
        foreach (var s in _policies.Values) s.Dispose();
    }

    private static string DomainKey(string uri, string domain) => $"{uri}\n{domain}";

    private sealed class Release(Action release) : IDisposable
    {
        private int _done;
        public void Dispose() { if (Interlocked.Exchange(ref _done, 1) == 0) release(); }
    }
}
