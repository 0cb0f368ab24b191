using System.Globalization;

namespace Backupd.Policies.Retention;

/// <summary>A restore point as retention sees it: an identity and the time it was taken.</summary>
public sealed record RetentionPoint(string Id, DateTimeOffset Time);

/// <summary>The retention rules, in the order they are applied.</summary>
public enum RetentionRule { Last, Hourly, Daily, Weekly, Monthly, Yearly }

/// <summary>What happens to one point, the rule responsible (if any), and why in words.</summary>
public sealed record RetentionDecision(RetentionPoint Point, bool Keep, RetentionRule? Rule, string Reason);

/// <summary>
/// Decides which restore points to keep, with Proxmox Backup Server prune semantics:
/// rules run in the order last, hourly, daily, weekly (ISO weeks, Monday first), monthly, yearly;
/// each keeps the newest point of each of its last N periods that have a point (empty periods
/// do not count); a period that already holds a point kept by an earlier rule is skipped (it does
/// not use up the later rule's count); older points in a period a rule has taken are removed
/// and no later rule can keep them. Everything no rule keeps is removed.
/// </summary>
/// <remarks>
/// Pure: the same points, rules, clock and zone always give the same decisions. Periods are
/// calendar periods in <c>zone</c> (the policy's schedule time zone). Points newer than
/// <c>now</c> (a clock that went backwards) are kept and take no part in the rules.
/// </remarks>
public static class RetentionPlanner
{
    public static IReadOnlyList<RetentionDecision> Plan(IEnumerable<RetentionPoint> points, RetentionRules rules, DateTimeOffset now, TimeZoneInfo? zone = null)
    {
        zone ??= TimeZoneInfo.Utc;
        // Newest first; equal times are ordered by id so the result never depends on input order.
        var ordered = points.OrderByDescending(p => p.UtcTicksOf()).ThenBy(p => p.Id, StringComparer.Ordinal).ToList();
        var duplicate = ordered.GroupBy(p => p.Id, StringComparer.Ordinal).FirstOrDefault(g => g.Count() > 1);
        if (duplicate is not null) throw new ArgumentException($"restore point id '{duplicate.Key}' appears twice", nameof(points));

        var decisions = new Dictionary<RetentionPoint, RetentionDecision>(ReferenceEqualityComparer.Instance);
        foreach (var p in ordered.Where(p => p.Time > now))
            decisions[p] = new RetentionDecision(p, true, null, $"newer than now ({now:u}): never pruned (is a clock wrong?)");
        var candidates = ordered.Where(p => p.Time <= now).ToList();

        if (rules.KeepsEverything)
        {
            foreach (var p in candidates) decisions[p] = new RetentionDecision(p, true, null, "no retention rule is set: every point is kept");
            return ordered.Select(p => decisions[p]).ToList();
        }

        Apply(candidates, decisions, RetentionRule.Last, rules.Last, p => p.Id, _ => "point");
        Apply(candidates, decisions, RetentionRule.Hourly, rules.Hourly, p => Local(p, zone).ToString("yyyy-MM-dd'T'HH", CultureInfo.InvariantCulture), id => $"hour {id}");
        Apply(candidates, decisions, RetentionRule.Daily, rules.Daily, p => Local(p, zone).ToString("yyyy-MM-dd", CultureInfo.InvariantCulture), id => $"day {id}");
        Apply(candidates, decisions, RetentionRule.Weekly, rules.Weekly, p => IsoWeek(Local(p, zone)), id => $"ISO week {id}");
        Apply(candidates, decisions, RetentionRule.Monthly, rules.Monthly, p => Local(p, zone).ToString("yyyy-MM", CultureInfo.InvariantCulture), id => $"month {id}");
        Apply(candidates, decisions, RetentionRule.Yearly, rules.Yearly, p => Local(p, zone).ToString("yyyy", CultureInfo.InvariantCulture), id => $"year {id}");

        foreach (var p in candidates.Where(p => !decisions.ContainsKey(p)))
            decisions[p] = new RetentionDecision(p, false, null, $"not selected by any rule ({rules})");
        return ordered.Select(p => decisions[p]).ToList();
    }

    /// <summary>The points <see cref="Plan"/> would remove.</summary>
    public static IReadOnlyList<RetentionPoint> ToRemove(IEnumerable<RetentionPoint> points, RetentionRules rules, DateTimeOffset now, TimeZoneInfo? zone = null) =>
        Plan(points, rules, now, zone).Where(d => !d.Keep).Select(d => d.Point).ToList();

    private static void Apply(List<RetentionPoint> newestFirst, Dictionary<RetentionPoint, RetentionDecision> decisions,
        RetentionRule rule, int count, Func<RetentionPoint, string> period, Func<string, string> describe)
    {
        if (count <= 0) return;
        var name = $"keep-{rule.ToString().ToLowerInvariant()}";
        // Periods that already hold a point kept by an earlier rule are "covered": this rule skips them entirely.
        var covered = newestFirst.Where(p => decisions.TryGetValue(p, out var d) && d.Keep).Select(period).ToHashSet(StringComparer.Ordinal);
        var taken = new Dictionary<string, RetentionPoint>(StringComparer.Ordinal);
        foreach (var p in newestFirst)
        {
            if (decisions.ContainsKey(p)) continue;
            var id = period(p);
            if (covered.Contains(id)) continue;
            if (taken.TryGetValue(id, out var newer))
            {
                decisions[p] = new RetentionDecision(p, false, rule, $"{name}: {describe(id)} keeps a newer point ({newer.Id})");
                continue;
            }
            if (taken.Count >= count) break;
            taken[id] = p;
            decisions[p] = rule == RetentionRule.Last
                ? new RetentionDecision(p, true, rule, $"{name}: newest {taken.Count} of {count}")
                : new RetentionDecision(p, true, rule, $"{name}: newest point of {describe(id)} ({taken.Count} of {count})");
        }
    }

    private static DateTime Local(RetentionPoint p, TimeZoneInfo zone) => TimeZoneInfo.ConvertTime(p.Time, zone).DateTime;

    private static string IsoWeek(DateTime local) =>
        $"{ISOWeek.GetYear(local):D4}-W{ISOWeek.GetWeekOfYear(local):D2}";

    private static long UtcTicksOf(this RetentionPoint p) => p.Time.UtcTicks;
}
