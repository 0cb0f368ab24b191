using System.Diagnostics.Metrics;
using Backupd.Daemon.Notifications;
using Backupd.Daemon.Observability;

namespace Backupd.Daemon.Tests.Observability;

public sealed class PrometheusExporterTests
{
    [Fact]
    public void Counters_histograms_and_gauges_are_written_in_the_text_format()
    {
        var name = "test-" + Guid.NewGuid();
        using var meter = new Meter(name);
        using var exporter = new PrometheusExporter(name);
        var runs = meter.CreateCounter<long>("t_runs_total", description: "runs");
        var durations = meter.CreateHistogram<double>("t_duration_seconds", "s", "durations");
        var value = 3.5;
        meter.CreateObservableGauge("t_gauge", () => new Measurement<double>(value, new KeyValuePair<string, object?>("domain", "a\"b\\c\nd")));

        runs.Add(2, new KeyValuePair<string, object?>("outcome", "failed"));
        runs.Add(1, new KeyValuePair<string, object?>("outcome", "failed"));
        durations.Record(4);
        durations.Record(100);
        var text = exporter.Scrape();

        Assert.Contains("# TYPE t_runs_total counter\nt_runs_total{outcome=\"failed\"} 3\n", text);
        Assert.Contains("# HELP t_runs_total runs\n", text);
        Assert.Contains("t_gauge{domain=\"a\\\"b\\\\c\\nd\"} 3.5\n", text);
        Assert.Contains("t_duration_seconds_bucket{le=\"1\"} 0\n", text);
        Assert.Contains("t_duration_seconds_bucket{le=\"5\"} 1\n", text);
        Assert.Contains("t_duration_seconds_bucket{le=\"120\"} 2\n", text);
        Assert.Contains("t_duration_seconds_bucket{le=\"+Inf\"} 2\n", text);
        Assert.Contains("t_duration_seconds_sum 104\nt_duration_seconds_count 2\n", text);

        // Gauges are polled at each scrape: a new value shows, an old one is not kept.
        value = 7;
        Assert.Contains("t_gauge{domain=\"a\\\"b\\\\c\\nd\"} 7\n", exporter.Scrape());
    }

    [Fact]
    public void Webhook_signature_is_the_hmac_sha256_of_the_body()
    {
        var body = "{\"event\":\"failure\"}"u8.ToArray();
        // Reference value: printf '{"event":"failure"}' | openssl dgst -sha256 -hmac key
        Assert.Equal("sha256=dce5b1c8d7e0d7f555a59d21cc341fab7481b47992af229166c5597576616145", Notifier.Signature("key", body));
        Assert.NotEqual(Notifier.Signature("k1", body), Notifier.Signature("k2", body));
    }

    [Fact]
    public void Systemd_status_names_the_running_jobs_and_their_percentages()
    {
        var web = new RunningJob(new ObservedRun("web1", "nightly", "schedule", DateTimeOffset.UnixEpoch), "copy", 42, 100, null);
        var db = new RunningJob(new ObservedRun("db", "nightly", "schedule", DateTimeOffset.UnixEpoch), "snapshot", 0, null, null);
        Assert.Equal("2 policies scheduled", SystemdStatus.Text(2, []));
        Assert.Equal("2 policies scheduled; running: web1 copy 42%, db snapshot", SystemdStatus.Text(2, [web, db]));
    }
}
