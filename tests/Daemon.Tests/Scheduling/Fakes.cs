using System.Collections.Concurrent;
using Backupd.Daemon.Scheduling;
using Backupd.Policies.Loading;
using Backupd.Policies.Model;

namespace Backupd.Daemon.Tests.Scheduling;

/// <summary>A backup runner that records calls and concurrency, and can be told to block, fail or honour cancellation.</summary>
internal sealed class FakeRunner : IBackupRunner
{
    private int _running;
    private readonly ConcurrentDictionary<string, int> _runningPerDomain = new();
    public ConcurrentQueue<(string Policy, string Domain, DateTimeOffset At)> Calls { get; } = new();
    public int MaxConcurrent { get; private set; }
    public int MaxPerDomain { get; private set; }
    public TimeSpan Duration { get; set; } = TimeSpan.FromMilliseconds(50);
    /// <summary>When set, every run waits for it (then for <see cref="Duration"/>): the test decides when runs end.</summary>
    public Task? Hold { get; set; }
    public int Running { get { lock (_lock) return _running; } }
    public Func<string, bool> FailFor { get; set; } = _ => false;
    /// <summary>Domains whose run is refused as busy before it touches anything (e.g. a verify outlasted the reader wait).</summary>
    public Func<string, bool> RefuseFor { get; set; } = _ => false;
    public ConcurrentQueue<string> CancelledRuns { get; } = new();
    private readonly Lock _lock = new();

    public async Task RunAsync(PolicyDefinition policy, string domain, IReadOnlyCollection<PolicyDefinition> peers, CancellationToken ct)
    {
        Calls.Enqueue((policy.Name, domain, DateTimeOffset.UtcNow));
        lock (_lock)
        {
            _running++;
            MaxConcurrent = Math.Max(MaxConcurrent, _running);
            MaxPerDomain = Math.Max(MaxPerDomain, _runningPerDomain.AddOrUpdate(domain, 1, (_, n) => n + 1));
        }
        try
        {
            try
            {
                if (Hold is { } hold) await hold.WaitAsync(ct);
                await Task.Delay(Duration, ct);
            }
            catch (OperationCanceledException)
            {
                // A real runner cancels its copy, then still commits and pivots before returning.
                CancelledRuns.Enqueue(domain);
                await Task.Delay(100, CancellationToken.None);
                throw;
            }
            if (FailFor(domain)) throw new InvalidOperationException($"backup of {domain} failed");
            if (RefuseFor(domain)) throw new Backupd.Daemon.Workflow.BackupRefusedException(Backupd.Daemon.Workflow.RefusalKind.Busy, $"the group of {domain} is being read by a restore or verify");
        }
        finally
        {
            lock (_lock)
            {
                _running--;
                _runningPerDomain.AddOrUpdate(domain, 0, (_, n) => n - 1);
            }
        }
    }

    public int CountFor(string domain) => Calls.Count(c => c.Domain == domain);
}

internal sealed class FakeDomains(params string[] names) : IDomainSource
{
    public string[] Names { get; set; } = names;
    public Task<IReadOnlyList<string>> ListDomainsAsync(string uri, CancellationToken ct) => Task.FromResult<IReadOnlyList<string>>(Names);
}

internal static class Wait
{
    /// <summary>Polls <paramref name="condition"/> until it holds; fails after <paramref name="timeout"/> (generous: a slow machine only waits longer).</summary>
    public static async Task Until(Func<bool> condition, TimeSpan timeout, string what)
    {
        var deadline = DateTime.UtcNow + timeout;
        while (!condition())
        {
            if (DateTime.UtcNow > deadline) throw new TimeoutException($"waited {timeout.TotalSeconds}s for {what}");
            await Task.Delay(20);
        }
    }
}

internal static class TestPolicies
{
    public static PolicyFileResult File(string path, string yaml) => PolicyLoader.ParseText(yaml, path);

    public static PolicyDefinition One(string yaml) => Assert.Single(PolicyLoader.ParseText(yaml, "/p/t.yaml").Policies);

    public static string Yaml(string name, string domains, string schedule = "hourly", int maxParallel = 1, string repository = "/srv/r") =>
        $"name: {name}\ndomains: {domains}\nschedule: {schedule}\nrepository: {repository}\nmax-parallel: {maxParallel}\n";
}

internal sealed class FakeVerifier : Backupd.Daemon.Scheduling.IRestorePointVerifier
{
    public System.Collections.Concurrent.ConcurrentQueue<string> Calls { get; } = new();
    public Task<bool> VerifyAsync(PolicyDefinition policy, CancellationToken ct)
    {
        Calls.Enqueue(policy.Name);
        return Task.FromResult(true);
    }
}
