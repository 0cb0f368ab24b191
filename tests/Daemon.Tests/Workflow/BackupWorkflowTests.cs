using Backupd.Daemon.Libvirt;
using Backupd.Daemon.Workflow;
using Backupd.Policies.Model;
using Microsoft.Extensions.Logging;

namespace Backupd.Daemon.Tests.Workflow;

// Faults.Spec is process-wide: classes that set it must not run in parallel with each other.
[Collection("Faults")]
// Integration: the workflow takes the real host-wide run lock in /run/lock/backupd (root-owned), which a non-root run cannot open.
[Trait("Category", "Integration")]
public sealed class BackupWorkflowTests : IDisposable
{
    private readonly string dir = Directory.CreateTempSubdirectory("bkd-wf-").FullName;
    private readonly FakeHypervisor hv;
    private readonly FakeImages images;
    private readonly FakeTarget target;
    private readonly ListLogger log = new();

    public BackupWorkflowTests()
    {
        hv = new FakeHypervisor(dir);
        images = new FakeImages(hv.Calls);
        target = new FakeTarget(hv.Calls);
        Faults.Spec = null;
    }

    public void Dispose() => Directory.Delete(dir, recursive: true);

    private WorkflowOptions Options => new()
    {
        StateDirectory = Path.Combine(dir, "state"),
        MinimumOverlayFreeBytes = 1,
        CommitRetryDelay = TimeSpan.Zero,
    };

    private Task<BackupResult> Run(QuiesceMode quiesce = QuiesceMode.Preferred, string[]? include = null, CancellationToken ct = default) =>
        new BackupWorkflow(hv, images, target, Options, log).RunAsync(new BackupRequest(hv.Name, include ?? [], [], quiesce), ct);

    private static string[] Overlays(FakeDisk disk) => [.. disk.Chain.Select(c => c.Path).Where(OverlayNaming.IsOverlay)];

    private int OverlayFilesLeft() => Directory.EnumerateFiles(dir).Count(OverlayNaming.IsOverlay);

    [Fact]
    public async Task Running_domain_snapshot_then_copy_then_commit_pivot_then_cleanup()
    {
        var vda = hv.AddDisk("vda");
        var vdb = hv.AddDisk("vdb", "raw");

        var result = await Run();

        Assert.Equal(
            ["snapshot", "metadata domain.xml", "metadata consistency", "copy vda.0 vda.qcow2", "copy vdb.0 vdb.raw", "point committed", "commit vda", "pivot vda", "commit vdb", "pivot vdb"],
            hv.Calls);
        Assert.Equal(RunOutcome.Succeeded, result.Outcome);
        Assert.Equal(Consistency.CrashConsistent, result.Consistency);
        Assert.Equal("point-1", result.RestorePointId);
        Assert.All(result.Disks, d => Assert.True(d.BackOnBase));
        Assert.NotNull(result.OverlayLifetime);
        Assert.Empty(Overlays(vda));
        Assert.Empty(Overlays(vdb));
        Assert.Equal(0, OverlayFilesLeft());
        Assert.Equal(vda.Chain[0].Path, vda.PersistentSource);
        Assert.Empty(new RunJournal(Options.StateDirectory).OpenEntries());
        Assert.Single(Directory.GetFiles(Path.Combine(Options.StateDirectory, "journal", "done")));
    }

    [Fact]
    public async Task Overlays_are_named_beside_the_base_with_the_run_id()
    {
        var vda = hv.AddDisk("vda");
        string? seen = null;
        target.OnAdd = _ => seen = vda.Chain[0].Path;

        var result = await Run();

        Assert.Equal($"{vda.Chain[0].Path}.backupd-{result.RunId}.qcow2", seen);
        Assert.Equal(result.RunId, OverlayNaming.RunIdOf(seen));
    }

    [Fact]
    public async Task A_failing_copy_still_commits_and_pivots_every_disk()
    {
        var vda = hv.AddDisk("vda");
        target.OnAdd = _ => throw new IOException("repository disk full");

        var result = await Run();

        Assert.Equal(RunOutcome.Failed, result.Outcome);
        Assert.Contains("repository disk full", result.Error, StringComparison.Ordinal);
        Assert.Contains("pivot vda", hv.Calls);
        Assert.False(target.Committed);
        Assert.Empty(Overlays(vda));
        Assert.Equal(0, OverlayFilesLeft());
    }

    [Fact]
    public async Task Cancellation_during_the_copy_does_not_cancel_the_commit()
    {
        var vda = hv.AddDisk("vda");
        using var cts = new CancellationTokenSource();
        target.OnAdd = _ => cts.Cancel();

        var result = await Run(ct: cts.Token);

        Assert.Equal(RunOutcome.Failed, result.Outcome);
        Assert.Equal(["commit vda", "pivot vda"], hv.Calls.Where(c => c.StartsWith("commit", StringComparison.Ordinal) || c.StartsWith("pivot", StringComparison.Ordinal)));
        Assert.Empty(Overlays(vda));
    }

    [Fact]
    public async Task An_impossible_pivot_leaves_the_overlay_and_alerts()
    {
        var vda = hv.AddDisk("vda");
        hv.PivotFails = true;

        var result = await Run();

        Assert.Equal(RunOutcome.NeedsAttention, result.Outcome);
        Assert.Equal(Options.CommitAttempts, hv.Calls.Count(c => c == "pivot vda"));
        var overlay = Assert.Single(Overlays(vda));
        Assert.True(File.Exists(overlay), "an overlay holding guest data must never be deleted");
        Assert.Contains(log.Entries, e => e.Level == LogLevel.Critical && e.Message.Contains("backupd recover", StringComparison.Ordinal));
        var open = Assert.Single(new RunJournal(Options.StateDirectory).OpenEntries());
        Assert.Equal(result.RunId, open.RunId);
        Assert.False(Assert.Single(result.Disks).BackOnBase);
    }

    [Fact]
    public async Task A_failed_snapshot_touches_nothing_else()
    {
        hv.AddDisk("vda");
        hv.SnapshotFails = _ => new LibvirtException("virDomainSnapshotCreateXML", 67, 10, "file exists");

        var result = await Run(QuiesceMode.Off);

        Assert.Equal(RunOutcome.Failed, result.Outcome);
        Assert.Equal(["snapshot"], hv.Calls);
        Assert.Null(result.OverlayLifetime);
        Assert.Empty(new RunJournal(Options.StateDirectory).OpenEntries());
    }

    /// <summary>What libvirt reports when QEMU's LUKS key set-up measured 0 ms of CPU time.</summary>
    private static LibvirtException LuksBenchmarkFailure() =>
        new LibvirtException("virDomainSnapshotCreateXML", 9, 10, "operation failed: failed to format image: 'Unable to get accurate CPU usage'");

    [Fact]
    public async Task A_snapshot_that_fails_in_QEMUs_LUKS_benchmark_is_rolled_back_and_retried()
    {
        hv.AddDisk("vda");
        var failures = 2;
        hv.SnapshotFails = _ => failures-- > 0
            ? LuksBenchmarkFailure()
            : null;

        var result = await Run(QuiesceMode.Off);

        Assert.Equal(RunOutcome.Succeeded, result.Outcome);
        Assert.Equal(["snapshot", "snapshot", "snapshot"], hv.Calls.Where(c => c.StartsWith("snapshot", StringComparison.Ordinal)));
    }

    [Fact]
    public async Task A_LUKS_benchmark_failure_that_keeps_coming_back_fails_the_run_after_a_few_attempts()
    {
        hv.AddDisk("vda");
        hv.SnapshotFails = _ => LuksBenchmarkFailure();

        var result = await Run(QuiesceMode.Off);

        Assert.Equal(RunOutcome.Failed, result.Outcome);
        Assert.Equal(BackupWorkflow.LuksBenchmarkAttempts, hv.Calls.Count(c => c == "snapshot"));
        Assert.Empty(new RunJournal(Options.StateDirectory).OpenEntries());
    }

    [Fact]
    public async Task Preferred_quiesce_falls_back_to_crash_consistent()
    {
        hv.AddDisk("vda");
        hv.AgentConnected = true;
        hv.SnapshotFails = quiesce => quiesce ? new LibvirtException("virDomainSnapshotCreateXML", 86, 10, "agent unresponsive") : null;

        var result = await Run(QuiesceMode.Preferred);

        Assert.Equal(["snapshot+quiesce", "snapshot"], hv.Calls.Where(c => c.StartsWith("snapshot", StringComparison.Ordinal)));
        Assert.Equal(Consistency.CrashConsistent, result.Consistency);
        Assert.Equal(RunOutcome.Succeeded, result.Outcome);
    }

    [Fact]
    public async Task Required_quiesce_with_an_agent_is_application_consistent()
    {
        hv.AddDisk("vda");
        hv.AgentConnected = true;

        var result = await Run(QuiesceMode.Required);

        Assert.Equal(Consistency.ApplicationConsistent, result.Consistency);
        Assert.Equal("snapshot+quiesce", hv.Calls[0]);
    }

    [Fact]
    public async Task Cdrom_and_readonly_disks_are_skipped_with_reasons_and_not_snapshotted()
    {
        hv.AddDisk("vda");
        hv.AddDisk("hdc", "raw", device: "cdrom");
        var ro = hv.AddDisk("vdc", "raw");
        ro.ReadOnly = true;

        var result = await Run();

        Assert.Equal(["hdc", "vdc"], result.Skipped.Select(s => s.Target));
        Assert.Contains("cdrom", result.Skipped[0].Reason, StringComparison.Ordinal);
        Assert.Contains("read-only", result.Skipped[1].Reason, StringComparison.Ordinal);
        Assert.Equal(["vda"], result.Disks.Select(d => d.Target));
        Assert.Single(hv.Disks[1].Chain);
        Assert.Single(hv.Disks[2].Chain);
    }

    [Fact]
    public async Task Every_file_of_a_backing_chain_is_copied_with_its_depth()
    {
        var vda = hv.AddDisk("vda");
        var template = Path.Combine(dir, "template.qcow2");
        File.WriteAllText(template, "t");
        images.Chains[vda.Chain[0].Path] = [new(vda.Chain[0].Path, "qcow2", template, 64 << 20), new(template, "qcow2", null, 64 << 20)];
        vda.Sizes = new BlockSizes(64 << 20, 3 << 20, 3 << 20); // libvirt's capacity is the chain's virtual size

        var result = await Run();

        Assert.Equal(["vda.0", "vda.1"], Assert.Single(result.Disks).Files.Select(f => f.FileKey));
        Assert.Contains("copy vda.1 template.qcow2", hv.Calls);
    }

    public static TheoryData<string, RefusalKind> Refusals => new()
    {
        { "unknown-domain", RefusalKind.DomainNotFound },
        { "unknown-disk", RefusalKind.BadRequest },
        { "unwritable", RefusalKind.TargetUnavailable },
        { "job", RefusalKind.Busy },
        { "leftover", RefusalKind.NeedsRecovery },
        { "quiesce", RefusalKind.QuiesceUnavailable },
        { "no-space", RefusalKind.InsufficientSpace },
    };

    [Theory]
    [MemberData(nameof(Refusals))]
    public async Task Bad_requests_are_refused_before_any_snapshot_or_journal(string problem, RefusalKind kind)
    {
        var vda = hv.AddDisk("vda");
        var request = new BackupRequest(problem == "unknown-domain" ? "nope" : hv.Name, problem == "unknown-disk" ? ["vdz"] : [], [],
            problem == "quiesce" ? QuiesceMode.Required : QuiesceMode.Preferred);
        var options = Options;
        switch (problem)
        {
            case "unwritable": target.Writable = false; break;
            case "job": vda.Job = BlockJobType.Copy; break;
            case "leftover": vda.Chain.Insert(0, (vda.Chain[0].Path + ".backupd-20260101T000000Z-0123abcd.qcow2", "qcow2")); break;
            case "no-space": options = options with { MinimumOverlayFreeBytes = long.MaxValue }; break;
        }

        var e = await Assert.ThrowsAsync<BackupRefusedException>(() => new BackupWorkflow(hv, images, target, options, log).RunAsync(request, default));

        Assert.Equal(kind, e.Kind);
        Assert.False(string.IsNullOrWhiteSpace(e.Message));
        Assert.DoesNotContain(hv.Calls, c => c.StartsWith("snapshot", StringComparison.Ordinal));
        Assert.Empty(new RunJournal(options.StateDirectory).OpenEntries());
    }

    [Fact]
    public async Task Shut_off_domain_is_copied_without_a_snapshot()
    {
        hv.AddDisk("vda");
        hv.Id = null;

        var result = await Run();

        Assert.Equal(["metadata domain.xml", "metadata consistency", "copy vda.0 vda.qcow2", "point committed"], hv.Calls);
        Assert.Equal(Consistency.ShutOff, result.Consistency);
        Assert.Equal(RunOutcome.Succeeded, result.Outcome);
        Assert.Null(result.OverlayLifetime);
    }

    [Fact]
    public async Task A_start_during_the_copy_of_a_shut_off_domain_fails_the_run()
    {
        hv.AddDisk("vda");
        hv.Id = null;
        target.OnAdd = _ => hv.Id = 12;

        var result = await Run();

        Assert.Equal(RunOutcome.Failed, result.Outcome);
        Assert.Contains("started", result.Error, StringComparison.Ordinal);
        Assert.False(target.Committed);
        Assert.DoesNotContain(hv.Calls, c => c.StartsWith("snapshot", StringComparison.Ordinal));
    }

    [Fact]
    public async Task Injected_throw_mid_copy_behaves_like_a_copy_failure()
    {
        var vda = hv.AddDisk("vda");
        Faults.Spec = "mid-copy:throw";
        try
        {
            var result = await Run();
            Assert.Equal(RunOutcome.Failed, result.Outcome);
            Assert.Contains("injected fault at mid-copy", result.Error, StringComparison.Ordinal);
            Assert.Empty(Overlays(vda));
        }
        finally { Faults.Spec = null; }
    }

    [Fact]
    public async Task Recovery_commits_a_running_disk_left_on_an_overlay_and_repairs_the_definition()
    {
        var vda = hv.AddDisk("vda");
        var basePath = vda.Chain[0].Path;
        var overlay = basePath + ".backupd-20260101T000000Z-0123abcd.qcow2";
        File.WriteAllText(overlay, "guest data");
        vda.Chain.Insert(0, (overlay, "qcow2"));
        vda.PersistentSource = overlay;

        var dry = await new Recovery(hv, images, Options, log).RecoverAllAsync(dryRun: true, default);
        Assert.Equal("active commit (shallow) + pivot", Assert.Single(dry.Actions).Action);
        Assert.Empty(hv.Calls);

        var report = await new Recovery(hv, images, Options, log).RecoverAllAsync(dryRun: false, default);

        Assert.True(report.AllResolved);
        Assert.Equal(["commit vda", "pivot vda"], hv.Calls); // libvirt 9 repoints the definition at the pivot itself
        Assert.Equal(basePath, vda.Chain[0].Path);
        Assert.Equal(basePath, vda.PersistentSource);
        Assert.False(File.Exists(overlay));
    }

    [Fact]
    public async Task Recovery_of_a_shut_off_domain_commits_offline()
    {
        var vda = hv.AddDisk("vda");
        hv.Id = null;
        var basePath = vda.Chain[0].Path;
        var overlay = basePath + ".backupd-20260101T000000Z-0123abcd.qcow2";
        File.WriteAllText(overlay, "guest data");
        vda.PersistentSource = overlay;
        images.Chains[overlay] = [new(overlay, "qcow2", basePath, 1), new(basePath, "qcow2", null, 1)];

        var report = await new Recovery(hv, images, Options, log).RecoverAllAsync(dryRun: false, default);

        Assert.True(report.AllResolved);
        Assert.Equal([$"qemu-img commit {Path.GetFileName(overlay)}", "define"], hv.Calls);
        Assert.Equal(basePath, vda.PersistentSource);
        Assert.Equal("qcow2", vda.PersistentFormat);
        Assert.False(File.Exists(overlay));
    }

    [Fact]
    public async Task Recovery_leaves_alone_a_domain_whose_backup_is_still_running()
    {
        var vda = hv.AddDisk("vda");
        var overlay = vda.Chain[0].Path + ".backupd-20260101T000000Z-0123abcd.qcow2";
        File.WriteAllText(overlay, "guest data");
        vda.Chain.Insert(0, (overlay, "qcow2"));

        using (HostRunLock.Acquire(Options.StateDirectory, hv.Uuid, hv.Name))
        {
            var report = await new Recovery(hv, images, Options, log).RecoverAllAsync(dryRun: false, default);
            Assert.StartsWith("skipped", Assert.Single(report.Actions).Action, StringComparison.Ordinal);
            Assert.True(report.AllResolved);
            Assert.Empty(hv.Calls);
            Assert.True(File.Exists(overlay));
        }

        var after = await new Recovery(hv, images, Options, log).RecoverAllAsync(dryRun: false, default);
        Assert.True(Assert.Single(after.Actions).Done);
        Assert.False(File.Exists(overlay));
    }

    [Fact]
    public async Task When_libvirt_cannot_be_read_at_commit_time_nothing_is_deleted()
    {
        var vda = hv.AddDisk("vda");
        target.OnAdd = _ => hv.XmlFails = _ => true;

        var result = await Run();

        Assert.Equal(RunOutcome.NeedsAttention, result.Outcome);
        var overlay = Assert.Single(Overlays(vda));
        Assert.True(File.Exists(overlay));
        Assert.DoesNotContain(hv.Calls, c => c.StartsWith("commit", StringComparison.Ordinal));
        Assert.Single(new RunJournal(Options.StateDirectory).OpenEntries());
    }

    [Fact]
    public async Task A_domain_that_shuts_down_during_the_copy_is_committed_offline()
    {
        var vda = hv.AddDisk("vda");
        var basePath = vda.Chain[0].Path;
        target.OnAdd = _ =>
        {
            var overlay = vda.Chain[0].Path;
            images.Chains[overlay] = [new(overlay, "qcow2", basePath, 1), new(basePath, "qcow2", null, 1)];
            hv.Id = null; // the guest powered off
        };

        var result = await Run();

        Assert.Equal(RunOutcome.Succeeded, result.Outcome);
        Assert.Contains(hv.Calls, c => c.StartsWith("qemu-img commit", StringComparison.Ordinal));
        Assert.Contains("define", hv.Calls);
        Assert.DoesNotContain(hv.Calls, c => c.StartsWith("pivot", StringComparison.Ordinal));
        Assert.Equal(basePath, vda.PersistentSource);
        Assert.Equal(0, OverlayFilesLeft());
    }

    [Fact]
    public async Task Recovery_never_deletes_an_overlay_that_another_snapshot_sits_on()
    {
        var vda = hv.AddDisk("vda");
        var overlay = vda.Chain[0].Path + ".backupd-20260101T000000Z-0123abcd.qcow2";
        var theirs = Path.Combine(dir, "someone-elses-snapshot.qcow2");
        File.WriteAllText(overlay, "guest data");
        File.WriteAllText(theirs, "more guest data");
        vda.Chain.Insert(0, (overlay, "qcow2"));
        vda.Chain.Insert(0, (theirs, "qcow2"));

        var report = await new Recovery(hv, images, Options, log).RecoverAllAsync(dryRun: false, default);

        var action = Assert.Single(report.Actions);
        Assert.False(report.AllResolved);
        Assert.Contains("inside the disk's backing chain", action.Problem, StringComparison.Ordinal);
        Assert.True(File.Exists(overlay));
        Assert.Empty(hv.Calls);
    }
}
