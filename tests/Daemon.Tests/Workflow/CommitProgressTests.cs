using Backupd.Daemon.Cli.Commands;
using Backupd.Daemon.Libvirt;
using Backupd.Daemon.Maintenance;
using Backupd.Daemon.Observability;
using Backupd.Daemon.Runs;
using Backupd.Daemon.Workflow;
using Microsoft.Extensions.Logging;
using Spectre.Console;

namespace Backupd.Daemon.Tests.Workflow;

/// <summary>
/// The commit phase's progress (issue 14 item 4): the merger reads the active commit's cur/end between slices of
/// its wait for READY and hands it on; the run, the journal, the bars and prune's status line show it.
/// </summary>
public sealed class CommitProgressTests : IDisposable
{
    private const long MiB = 1 << 20;
    private readonly string dir = Directory.CreateTempSubdirectory("bkd-cp-").FullName;
    private readonly FakeHypervisor hv;
    private readonly ListLogger log = new();

    public CommitProgressTests() => hv = new FakeHypervisor(dir);

    public void Dispose() => Directory.Delete(dir, recursive: true);

    private WorkflowOptions Options => new() { StateDirectory = Path.Combine(dir, "state"), CommitRetryDelay = TimeSpan.Zero };

    /// <summary>vda running on one of our overlays, as after the snapshot.</summary>
    private JournalDisk OnOverlay(string target = "vda")
    {
        var disk = hv.AddDisk(target);
        var basePath = disk.Chain[0].Path;
        var overlay = $"{basePath}.backupd-{OverlayNaming.NewRunId(DateTimeOffset.UtcNow)}.qcow2";
        File.WriteAllText(overlay, "overlay");
        disk.Chain.Insert(0, (overlay, "qcow2"));
        return new JournalDisk(target, new DiskBase("file", basePath, "qcow2"), overlay);
    }

    [Fact]
    public async Task The_merger_reports_the_block_jobs_position_until_ready_then_the_whole()
    {
        var disk = OnOverlay();
        hv.Disks[0].CommitSlices = 4;
        hv.Disks[0].CommitEnd = 8 * MiB;
        var seen = new List<CommitProgress>();
        var merger = new OverlayMerger(hv, new FakeImages(hv.Calls), Options, log) { OnProgress = seen.Add };

        var outcome = await merger.MergeLiveAsync(hv.Uuid, disk);

        Assert.True(outcome.BackOnBase, outcome.Problem);
        Assert.Equal([0, 2 * MiB, 4 * MiB, 6 * MiB, 8 * MiB, 8 * MiB], seen.Select(p => p.Done));
        Assert.All(seen, p => Assert.Equal(("vda", 8 * MiB), (p.Target, p.Total)));
        // Sliced, so a report comes at least once a second; the time box is unchanged (each slice is within it).
        Assert.Equal(5, hv.ReadyWaits.Count);
        Assert.All(hv.ReadyWaits, w => Assert.True(w <= OverlayMerger.ProgressInterval, $"wait of {w}"));
    }

    [Fact]
    public async Task Without_a_sink_the_merger_waits_once_for_the_whole_time_box()
    {
        var disk = OnOverlay();
        var merger = new OverlayMerger(hv, new FakeImages(hv.Calls), Options, log);

        var outcome = await merger.MergeLiveAsync(hv.Uuid, disk);

        Assert.True(outcome.BackOnBase, outcome.Problem);
        Assert.Equal([Options.CommitReadyTimeout], hv.ReadyWaits);
    }

    [Fact]
    public async Task Reporting_keeps_the_commit_time_box()
    {
        var disk = OnOverlay();
        hv.Disks[0].CommitSlices = 1_000_000; // never ready within the box
        var options = Options with { CommitReadyTimeout = TimeSpan.Zero, CommitAttempts = 1 };
        var merger = new OverlayMerger(hv, new FakeImages(hv.Calls), options, log) { OnProgress = _ => { } };

        var outcome = await merger.MergeLiveAsync(hv.Uuid, disk);

        Assert.False(outcome.BackOnBase);
        Assert.Contains("did not become ready: TimedOut", outcome.Problem, StringComparison.Ordinal);
        Assert.Single(hv.ReadyWaits);
    }

    [Fact]
    public async Task A_sink_that_throws_does_not_keep_the_guest_on_its_overlay()
    {
        var disk = OnOverlay();
        hv.Disks[0].CommitSlices = 2;
        var merger = new OverlayMerger(hv, new FakeImages(hv.Calls), Options, log) { OnProgress = _ => throw new InvalidOperationException("bar gone") };

        var outcome = await merger.MergeLiveAsync(hv.Uuid, disk);

        Assert.True(outcome.BackOnBase, outcome.Problem);
        Assert.Contains("pivot vda", hv.Calls);
    }

    [Fact]
    public void The_runs_commit_position_sums_its_disks()
    {
        var totals = new WorkflowDomainBackup.CommitTotals();
        Assert.Equal(new RunProgress("commit", 1, 4), totals.Add(new CommitProgress("vda", 1, 4)));
        Assert.Equal(new RunProgress("commit", 4, 4), totals.Add(new CommitProgress("vda", 4, 4)));
        // The second disk starts after the first is merged: its bytes add to the first's.
        Assert.Equal(new RunProgress("commit", 5, 14), totals.Add(new CommitProgress("vdb", 1, 10)));
    }

    [Fact]
    public void The_journal_gets_a_line_per_tenth_of_the_commit_after_the_copys()
    {
        var logger = new Captured<ProgressJournal>();
        var journal = new ProgressJournal(logger);
        var run = new ObservedRun("web1", "nightly", "schedule", DateTimeOffset.UnixEpoch);
        journal.Started(run);
        journal.Progress(run, new RunProgress("copy", 100, 100));
        journal.Progress(run, new RunProgress("commit")); // the step starts before the first position is known
        for (var done = 0; done <= 100; done += 5) journal.Progress(run, new RunProgress("commit", done, 100));

        var commitLines = logger.Messages.Where(m => m.Contains("commit", StringComparison.Ordinal)).ToList();
        Assert.Equal(11, commitLines.Count); // 0 %, 10 %, ... 100 %
        Assert.Contains("100", commitLines[^1], StringComparison.Ordinal);
    }

    [Fact]
    public void Systemd_status_names_a_commit_with_its_percentage()
    {
        var tracker = new RunTracker(TimeProvider.System);
        var run = new ObservedRun("db", "nightly", "schedule", DateTimeOffset.UnixEpoch);
        tracker.Started(run);
        tracker.Progress(run, new RunProgress("commit", 3 * MiB, 8 * MiB));

        Assert.Equal("1 policies scheduled; running: db commit 38%", SystemdStatus.Text(1, tracker.Running));
    }

    [Fact]
    public void Recover_bars_start_a_new_bar_for_a_disk_whose_previous_merge_finished()
    {
        var added = new List<ProgressTask>();
        var bars = new TerminalProgress.CommitBars(label =>
        {
            var task = new ProgressTask(added.Count, label, 1);
            added.Add(task);
            return task;
        });

        bars.Report(new CommitProgress("vda", 0, 0)); // no total yet: nothing to draw
        bars.Report(new CommitProgress("vda", 2, 8));
        bars.Report(new CommitProgress("vda", 8, 8));
        bars.Report(new CommitProgress("vda", 1, 4)); // another domain's vda
        bars.Report(new CommitProgress("vdb", 3, 6));
        bars.Complete();

        Assert.Equal(["merge back vda", "merge back vda", "merge back vdb"], added.Select(t => t.Description));
        Assert.Equal([(8.0, 8.0), (4.0, 4.0), (6.0, 6.0)], added.Select(t => (t.Value, t.MaxValue)));
    }

    [Fact]
    public async Task Prunes_status_line_names_each_point_and_counts_the_removed()
    {
        var lines = new List<string>();
        var inner = new ListStore();
        var store = new PruneCommand.ReportingStore(inner, lines.Add);
        var p1 = new StoredPoint("g", "web1", "p1", DateTimeOffset.UnixEpoch);
        var p2 = p1 with { Id = "p2" };

        await store.DeleteAsync("/repo", p1, "old", default);
        await store.DeleteAsync("/repo", p2, "old", default);

        Assert.Equal(2, store.Removed);
        Assert.Equal(["p1", "p2"], inner.Deleted);
        Assert.Equal(["prune: removing p1 of web1 (0 removed so far)", "prune: removing p2 of web1 (1 removed so far)"], lines);
    }

    private sealed class ListStore : IRestorePointStore
    {
        public List<string> Deleted { get; } = [];
        public IReadOnlyList<(string Group, string DomainName, IReadOnlyList<StoredPoint> Points)> ListGroups(string repository) => [];
        public Task DeleteAsync(string repository, StoredPoint point, string reason, CancellationToken ct)
        {
            Deleted.Add(point.Id);
            return Task.CompletedTask;
        }
    }

    private sealed class Captured<T> : ILogger<T>
    {
        public List<string> Messages { get; } = [];
        public IDisposable? BeginScope<TState>(TState state) where TState : notnull => null;
        public bool IsEnabled(LogLevel logLevel) => true;
        public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter) =>
            Messages.Add(formatter(state, exception));
    }
}
