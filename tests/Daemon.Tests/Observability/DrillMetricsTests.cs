using Backupd.Daemon.Observability;
using Backupd.Storage.Catalog;
using Microsoft.Extensions.Logging.Abstractions;

namespace Backupd.Daemon.Tests.Observability;

/// <summary>Issue 11: the newest drill's result and RTO per domain, as the catalog's health rows give them.</summary>
public sealed class DrillMetricsTests
{
    [Fact]
    public void The_newest_drill_of_each_domain_gives_its_result_time_and_rto_and_a_domain_without_drills_gives_none()
    {
        var passed = "dm-" + Guid.NewGuid().ToString("N")[..8];
        var failed = "dm-" + Guid.NewGuid().ToString("N")[..8];
        var never = "dm-" + Guid.NewGuid().ToString("N")[..8];
        using var health = new HealthSnapshot(null!, NullLogger<HealthSnapshot>.Instance, TimeProvider.System)
        {
            Domains =
            [
                new DomainHealthRow { Name = passed, LastDrillAt = new DateTime(2026, 1, 2, 3, 4, 5, DateTimeKind.Utc), LastDrillPassed = true, LastDrillRtoSeconds = 14.25 },
                new DomainHealthRow { Name = failed, LastDrillAt = new DateTime(2026, 1, 2, 3, 4, 6, DateTimeKind.Utc), LastDrillPassed = false },
                new DomainHealthRow { Name = never },
            ],
        };
        using var exporter = new PrometheusExporter(BackupdMetrics.MeterName);
        using var metrics = new BackupdMetrics(health, new RunTracker(TimeProvider.System), new PolicyView(), TimeProvider.System);

        var text = exporter.Scrape();

        Assert.Contains($"backupd_drill_last_rto_seconds{{domain=\"{passed}\"}} 14.25\n", text);
        Assert.Contains($"backupd_drill_last_passed{{domain=\"{passed}\"}} 1\n", text);
        Assert.Contains($"backupd_drill_last_timestamp_seconds{{domain=\"{passed}\"}} 1767323045\n", text);
        Assert.Contains($"backupd_drill_last_passed{{domain=\"{failed}\"}} 0\n", text);
        Assert.DoesNotContain($"backupd_drill_last_rto_seconds{{domain=\"{failed}\"}}", text);
        Assert.DoesNotContain($"domain=\"{never}\"}}", text.Split('\n').Where(l => l.StartsWith("backupd_drill_", StringComparison.Ordinal)).Aggregate("", (a, l) => a + l + "\n"));
    }
}
