using System.Diagnostics.Metrics;
using Backupd.Daemon.Runs;

namespace Backupd.Daemon.Observability;

/// <summary>
/// The daemon's instruments (System.Diagnostics.Metrics, meter "backupd"). Events of this process's runs are counters
/// and histograms; the state of every domain (also backed up by CLI runs in other processes) are observable gauges
/// read from the catalog at scrape time. Names follow Prometheus conventions, so the exporter writes them as they are.
/// </summary>
public sealed class BackupdMetrics : IRunObserver, IDisposable
{
    public const string MeterName = "backupd";

    /// <summary>Seconds: a run, an overlay, a commit take from under a second (tests) to many hours.</summary>
    public static readonly double[] DurationBuckets = [1, 5, 15, 30, 60, 120, 300, 600, 1800, 3600, 7200, 14400, 43200];

    private readonly Meter _meter = new(MeterName);
    private readonly Counter<long> _runs;
    private readonly Counter<long> _verifies;
    private readonly Histogram<double> _runDuration;
    private readonly Histogram<double> _overlayLifetime;
    private readonly Histogram<double> _commitDuration;
    private readonly TimeProvider _clock;

    public BackupdMetrics(HealthSnapshot health, RunTracker tracker, PolicyView policies, TimeProvider clock)
    {
        _clock = clock;
        _runs = _meter.CreateCounter<long>("backupd_runs_total", description: "Backup runs of this daemon by outcome (succeeded, failed, interrupted, refused).");
        _verifies = _meter.CreateCounter<long>("backupd_verify_total", description: "Restore point verifies by result (ok, damaged).");
        _runDuration = _meter.CreateHistogram<double>("backupd_run_duration_seconds", "s", "Duration of backup runs of this daemon.");
        _overlayLifetime = _meter.CreateHistogram<double>("backupd_overlay_lifetime_seconds", "s", "How long a VM ran on its temporary overlay (snapshot to pivot).");
        _commitDuration = _meter.CreateHistogram<double>("backupd_commit_duration_seconds", "s", "Duration of the block commit that merges the overlay back.");

        _meter.CreateObservableGauge("backupd_catalog_up", () => health.CatalogUp ? 1 : 0, description: "1 when the last catalog read for metrics succeeded.");
        _meter.CreateObservableGauge("backupd_running_jobs", () => tracker.Running.Count, description: "Backups running in this daemon.");
        _meter.CreateObservableGauge("backupd_running_job_progress_ratio",
            () => tracker.Running.Where(j => j.Percent is not null).Select(j => new Measurement<double>(j.Percent!.Value / 100, Tag("domain", j.Run.Domain), Tag("step", j.Step))),
            description: "Progress of each running backup's current step (0-1).");
        _meter.CreateObservableGauge("backupd_overlay_age_seconds",
            () => tracker.Running.Where(j => j.OverlaySince is not null).Select(j => new Measurement<double>((_clock.GetUtcNow() - j.OverlaySince!.Value).TotalSeconds, Tag("domain", j.Run.Domain))),
            description: "How long each VM being backed up has run on its overlay so far.");
        _meter.CreateObservableGauge("backupd_policy_interval_seconds",
            () => policies.Active.Select(p => (p, i: PolicyView.Interval(p, _clock.GetUtcNow()))).Where(x => x.i is not null)
                .Select(x => new Measurement<double>(x.i!.Value.TotalSeconds, Tag("policy", x.p.Name))),
            description: "Interval between a policy's next two scheduled fires.");

        Domain("backupd_last_success_timestamp_seconds", "Unix time of the newest successful backup of each domain.", health,
            d => d.LastSuccess is { } t ? Seconds(t) : null, d => d.Policy is null ? [] : [Tag("policy", d.Policy)]);
        Domain("backupd_last_failure_timestamp_seconds", "Unix time of the newest failed or interrupted backup of each domain.", health, d => d.LastFailure is { } t ? Seconds(t) : null);
        Domain("backupd_last_run_duration_seconds", "Duration of the newest finished backup run of each domain.", health, d => d.LastDurationSeconds);
        Domain("backupd_last_run_read_bytes", "Bytes read from the VM's disks by the newest finished run.", health, d => d.LastRunId is null ? null : d.LastBytesRead);
        Domain("backupd_last_run_written_bytes", "Bytes written to the repository (changed blocks) by the newest finished run.", health, d => d.LastRunId is null ? null : d.LastBytesWritten);
        Domain("backupd_last_run_succeeded", "1 when the newest finished run of the domain succeeded, 0 when it failed.", health, d => d.LastState is null ? null : d.LastState == "succeeded" ? 1 : 0);
        Domain("backupd_restore_points", "Restore points of each domain in the catalog.", health, d => d.Points);
        Domain("backupd_repository_bytes", "Stored bytes of every restore point of each domain.", health, d => d.RepositoryBytes);
        Domain("backupd_newest_point_consistency", "The newest restore point's consistency (label; value 1).", health,
            d => d.NewestPoint is null ? null : 1, d => [Tag("consistency", d.NewestConsistency ?? "unknown")]);
        Domain("backupd_damaged_points", "Restore points whose newest verify found damage.", health, d => d.DamagedPoints);
        Domain("backupd_drill_last_timestamp_seconds", "Unix time the newest restore drill of each domain ended.", health, d => d.LastDrillAt is { } t ? Seconds(t) : null);
        Domain("backupd_drill_last_passed", "1 when the newest restore drill of the domain passed, 0 when it failed or was interrupted.", health,
            d => d.LastDrillPassed is { } p ? p ? 1 : 0 : null);
        Domain("backupd_drill_last_rto_seconds", "RTO of the newest restore drill of each domain: restore start to agent answer or check passed (absent when that drill measured none).", health,
            d => d.LastDrillRtoSeconds);
        Domain("backupd_overlay_left", "1 when the newest run died while the VM ran on an overlay (copy or commit step).", health, d => d.OverlayLeft ? 1 : 0);
    }

    private void Domain(string name, string help, HealthSnapshot health, Func<Storage.Catalog.DomainHealthRow, double?> value,
        Func<Storage.Catalog.DomainHealthRow, KeyValuePair<string, object?>[]>? extra = null) =>
        _meter.CreateObservableGauge(name, () => health.Domains
            .Select(d => (d, v: value(d))).Where(x => x.v is not null)
            .Select(x => new Measurement<double>(x.v!.Value, [Tag("domain", x.d.Name), .. extra?.Invoke(x.d) ?? []])), description: help);

    private static double Seconds(DateTime utc) => new DateTimeOffset(DateTime.SpecifyKind(utc, DateTimeKind.Utc)).ToUnixTimeMilliseconds() / 1000.0;

    private static KeyValuePair<string, object?> Tag(string key, string value) => new(key, value);

    public void Started(ObservedRun run) { }
    public void Progress(ObservedRun run, RunProgress progress) { }

    public void Finished(ObservedRun run, RunEnd outcome)
    {
        _runs.Add(1, Tag("outcome", outcome.Outcome), Tag("policy", run.Policy ?? ""));
        if (outcome.Outcome == RunEnd.Refused) return;
        _runDuration.Record((_clock.GetUtcNow() - run.StartedAt).TotalSeconds, Tag("policy", run.Policy ?? ""));
        if (outcome.Stats?.OverlayLifetime is { } overlay) _overlayLifetime.Record(overlay.TotalSeconds);
        if (outcome.Stats?.CommitTime is { } commit) _commitDuration.Record(commit.TotalSeconds);
    }

    public void Verified(string domain, string? policy, string pointId, bool ok, string detail) =>
        _verifies.Add(1, Tag("result", ok ? "ok" : "damaged"), Tag("policy", policy ?? ""));

    public void Dispose() => _meter.Dispose();
}
