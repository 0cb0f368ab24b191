using Backupd.Policies.Retention;
using CsCheck;

namespace Backupd.Policies.Tests;

public class RetentionPropertyTests
{
    private static readonly DateTimeOffset Now = new(2026, 11, 26, 12, 0, 0, TimeSpan.Zero);

    // Points within ~2 years before now (a few slightly after, to exercise the clock-skew rule).
    private static readonly Gen<RetentionPoint[]> GenPoints =
        Gen.Int[-120, 60 * 24 * 800].Array[0, 60].Select(minutes =>
            minutes.Distinct().Select((m, i) => new RetentionPoint($"p{i}", Now.AddMinutes(-m))).ToArray());

    private static readonly Gen<RetentionRules> GenRules =
        Gen.Select(Gen.Int[0, 5], Gen.Int[0, 5], Gen.Int[0, 8], Gen.Int[0, 5], Gen.Int[0, 4], Gen.Int[0, 3],
            (l, h, d, w, m, y) => new RetentionRules(l, h, d, w, m, y));

    [Fact]
    public void One_decision_per_point_each_with_a_reason()
    {
        Gen.Select(GenPoints, GenRules).Sample((points, rules) =>
        {
            var plan = RetentionPlanner.Plan(points, rules, Now);
            Assert.Equal(points.Select(p => p.Id).Order(), plan.Select(d => d.Point.Id).Order());
            Assert.All(plan, d => Assert.False(string.IsNullOrWhiteSpace(d.Reason)));
        });
    }

    [Fact]
    public void Deterministic_whatever_the_input_order()
    {
        Gen.Select(GenPoints, GenRules, Gen.Int).Sample((points, rules, seed) =>
        {
            var shuffled = points.OrderBy(_ => new Random(seed).Next()).ToArray();
            new Random(seed).Shuffle(shuffled);
            Assert.Equal(RetentionPlanner.Plan(points, rules, Now), RetentionPlanner.Plan(shuffled, rules, Now));
        });
    }

    [Fact]
    public void Kept_set_contains_the_keep_last_newest()
    {
        Gen.Select(GenPoints, GenRules).Sample((points, rules) =>
        {
            var kept = RetentionPlanner.Plan(points, rules, Now).Where(d => d.Keep).Select(d => d.Point.Id).ToHashSet();
            var newest = points.Where(p => p.Time <= Now).OrderByDescending(p => p.Time).ThenBy(p => p.Id, StringComparer.Ordinal).Take(rules.Last);
            Assert.All(newest, p => Assert.Contains(p.Id, kept));
        });
    }

    [Fact]
    public void Never_removes_everything_and_always_keeps_the_newest()
    {
        Gen.Select(GenPoints, GenRules).Where((points, _) => points.Length > 0).Sample((points, rules) =>
        {
            var plan = RetentionPlanner.Plan(points, rules, Now);
            Assert.Contains(plan, d => d.Keep);
            Assert.True(plan[0].Keep);
            Assert.Equal(points.Max(p => p.Time), plan[0].Point.Time);
        });
    }

    [Fact]
    public void Each_rule_keeps_at_most_its_count_one_per_period()
    {
        Gen.Select(GenPoints, GenRules).Sample((points, rules) =>
        {
            var plan = RetentionPlanner.Plan(points, rules, Now);
            int Count(RetentionRule r) => plan.Count(d => d.Keep && d.Rule == r);
            Assert.True(Count(RetentionRule.Last) <= rules.Last);
            Assert.True(Count(RetentionRule.Hourly) <= rules.Hourly);
            Assert.True(Count(RetentionRule.Daily) <= rules.Daily);
            Assert.True(Count(RetentionRule.Weekly) <= rules.Weekly);
            Assert.True(Count(RetentionRule.Monthly) <= rules.Monthly);
            Assert.True(Count(RetentionRule.Yearly) <= rules.Yearly);
            var days = plan.Where(d => d.Keep && d.Rule == RetentionRule.Daily).Select(d => d.Point.Time.UtcDateTime.Date).ToList();
            Assert.Equal(days.Count, days.Distinct().Count());
        });
    }

    [Fact]
    public void Keeping_is_idempotent()
    {
        // Pruning twice with the same rules and clock removes nothing more the second time.
        Gen.Select(GenPoints, GenRules).Sample((points, rules) =>
        {
            var kept = RetentionPlanner.Plan(points, rules, Now).Where(d => d.Keep).Select(d => d.Point).ToList();
            Assert.All(RetentionPlanner.Plan(kept, rules, Now), d => Assert.True(d.Keep, d.Reason));
        });
    }
}
