using Backupd.Policies.Model;

namespace Backupd.Daemon.Observability;

/// <summary>The policies in force (set by the scheduler at every load): their schedules say when a domain is stale.</summary>
public sealed class PolicyView
{
    private IReadOnlyList<PolicyDefinition> _active = [];

    public IReadOnlyList<PolicyDefinition> Active => Volatile.Read(ref _active);

    public void Set(IReadOnlyList<PolicyDefinition> active) => Volatile.Write(ref _active, active);

    public PolicyDefinition? Find(string? name) => name is null ? null : Active.FirstOrDefault(p => p.Name == name);

    /// <summary>The gap between the policy's next two fires: the interval it promises a fresh point in.</summary>
    public static TimeSpan? Interval(PolicyDefinition policy, DateTimeOffset now)
    {
        var next = policy.Schedule.NextFireTimes(now, 2);
        return next.Count == 2 ? next[1] - next[0] : null;
    }

    public static DateTimeOffset? NextFire(PolicyDefinition policy, DateTimeOffset now) =>
        policy.Schedule.NextFireTimes(now, 1) is [var first, ..] ? first : null;
}
