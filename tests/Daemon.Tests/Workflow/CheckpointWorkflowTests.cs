using Backupd.Daemon.Libvirt;
using Backupd.Daemon.Workflow;
using Backupd.Policies.Model;
using Backupd.Storage.Catalog;
using Backupd.Storage.ChangedBlocks;
using Microsoft.Extensions.Logging;

namespace Backupd.Daemon.Tests.Workflow;

/// <summary>The checkpoint steps of the workflow (issue 12) against the fake hypervisor: create, rotate, discard, carry over, recover.</summary>
[Collection("Faults")]
// Integration: the workflow takes the real host-wide run lock in /run/lock/backupd (root-owned), which a non-root run cannot open.
[Trait("Category", "Integration")]
public sealed class CheckpointWorkflowTests : IDisposable
{
    private readonly string dir = Directory.CreateTempSubdirectory("bkd-cp-").FullName;
    private readonly FakeHypervisor hv;
    private readonly FakeImages images;
    private readonly FakeTarget target;
    private readonly ListLogger log = new();

    public CheckpointWorkflowTests()
    {
        hv = new FakeHypervisor(dir) { RecordCheckpointCalls = true };
        images = new FakeImages(hv.Calls);
        target = new FakeTarget(hv.Calls);
        Faults.Spec = null;
    }

    public void Dispose()
    {
        Faults.Spec = null;
        Directory.Delete(dir, recursive: true);
    }

    private WorkflowOptions Options => new()
    {
        StateDirectory = Path.Combine(dir, "state"),
        MinimumOverlayFreeBytes = 1,
        CommitRetryDelay = TimeSpan.Zero,
        ChangedBlockTracking = true,
    };

    private Task<BackupResult> Run(ReadRequest? read = null) =>
        new BackupWorkflow(hv, images, target, Options, log).RunAsync(new BackupRequest(hv.Name, [], [], QuiesceMode.Off) { Read = read ?? new() }, default);

    private ChangedBlockMetadata Record(int point = -1) =>
        ChangedBlockMetadata.Of(target.Points[point < 0 ? target.Points.Count - 1 : point].Metadata) ?? throw new InvalidOperationException("no changed-blocks record");

    [Fact]
    public async Task The_checkpoint_is_created_before_the_snapshot_listing_every_disk_and_kept_for_the_next_backup()
    {
        hv.AddDisk("vda");
        hv.AddDisk("vdb", "raw");

        var result = await Run();

        Assert.Equal(RunOutcome.Succeeded, result.Outcome);
        var name = CheckpointSteps.NameFor(result.RunId);
        Assert.True(hv.Calls.IndexOf($"checkpoint-create {name}") < hv.Calls.IndexOf("snapshot"), string.Join(", ", hv.Calls));
        var created = CheckpointXml.Parse(Assert.Single(hv.CheckpointXmls));
        Assert.Equal(["vda"], created.BitmapDisks);
        Assert.Contains("name=\"vdb\" checkpoint=\"no\"", hv.CheckpointXmls[0], StringComparison.Ordinal);
        Assert.Equal(name, Assert.Single(hv.Checkpoints).Name);
        Assert.Equal(name, result.Checkpoint);
        var record = Record();
        Assert.Equal(name, record.Checkpoint);
        Assert.True(record.Disk("vda")!.Bitmap);
        Assert.False(record.Disk("vdb")!.Bitmap);
        Assert.Equal("no earlier restore point with a checkpoint", result.Disks.Single(d => d.Target == "vda").FullReadReason);
        Assert.StartsWith("raw image", result.Disks.Single(d => d.Target == "vdb").FullReadReason, StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_second_backup_rotates_the_first_checkpoint_away_after_the_point_is_durable()
    {
        hv.AddDisk("vda");
        var first = await Run();
        var second = await Run();

        var oldName = CheckpointSteps.NameFor(first.RunId);
        var newName = CheckpointSteps.NameFor(second.RunId);
        Assert.Equal(newName, Assert.Single(hv.Checkpoints).Name);
        Assert.True(hv.Calls.IndexOf($"checkpoint-delete {oldName}") > hv.Calls.LastIndexOf("pivot vda"), "the old checkpoint goes only once the disk is back on its base");
        Assert.True(hv.Calls.IndexOf($"checkpoint-delete {oldName}") > hv.Calls.LastIndexOf("point committed"));
        Assert.Equal(newName, Record().Checkpoint);
    }

    [Fact]
    public async Task A_failed_backup_deletes_its_new_checkpoint_and_keeps_the_last_good_one()
    {
        hv.AddDisk("vda");
        var first = await Run();
        target.OnAdd = _ => throw new IOException("repository disk full");

        var failed = await Run();

        Assert.Equal(RunOutcome.Failed, failed.Outcome);
        Assert.Contains($"checkpoint-delete {CheckpointSteps.NameFor(failed.RunId)}", hv.Calls);
        Assert.Equal(CheckpointSteps.NameFor(first.RunId), Assert.Single(hv.Checkpoints).Name);
        Assert.Null(failed.Checkpoint);
    }

    [Fact]
    public async Task An_injected_fault_right_after_the_checkpoint_discards_it_and_puts_nothing_on_an_overlay()
    {
        hv.AddDisk("vda");
        Faults.Spec = $"{Faults.AfterCheckpoint}:throw";

        var result = await Run();

        Assert.Equal(RunOutcome.Failed, result.Outcome);
        Assert.DoesNotContain("snapshot", hv.Calls);
        Assert.Empty(hv.Checkpoints);
        Assert.Empty(new RunJournal(Options.StateDirectory).OpenEntries());
    }

    [Fact]
    public async Task A_refused_checkpoint_does_not_fail_the_backup_and_the_last_good_one_is_carried_over()
    {
        hv.AddDisk("vda");
        var first = await Run();
        hv.CheckpointCreateFails = () => new LibvirtException("virDomainCheckpointCreateXML", 1, 69, "unable to execute QEMU command 'transaction': Bitmap already exists");

        var second = await Run();

        Assert.Equal(RunOutcome.Succeeded, second.Outcome);
        Assert.Contains(log.Entries, e => e.Level == LogLevel.Warning && e.Message.Contains("Bitmap already exists", StringComparison.Ordinal));
        var kept = CheckpointSteps.NameFor(first.RunId);
        Assert.Equal(kept, Assert.Single(hv.Checkpoints).Name);
        Assert.Equal(kept, Record().Checkpoint);
        Assert.True(Record().Disk("vda")!.Bitmap);
    }

    [Fact]
    public async Task A_domain_with_only_raw_and_qcow2_v2_disks_gets_no_checkpoint_and_says_why()
    {
        hv.AddDisk("vda", "raw");
        hv.AddDisk("vdb", qcow2Version: 2);

        var result = await Run();

        Assert.Equal(RunOutcome.Succeeded, result.Outcome);
        Assert.DoesNotContain(hv.Calls, c => c.StartsWith("checkpoint-create", StringComparison.Ordinal));
        Assert.Null(result.Checkpoint);
        Assert.StartsWith("qcow2 v2 image", result.Disks.Single(d => d.Target == "vdb").FullReadReason, StringComparison.Ordinal);
        Assert.Null(Record().Checkpoint);
    }

    [Fact]
    public async Task A_shut_off_domain_with_checkpoints_is_backed_up_and_its_checkpoint_carried_over()
    {
        hv.AddDisk("vda");
        var live = await Run();
        hv.Id = null;
        hv.Calls.Clear();

        var off = await Run();

        Assert.Equal(RunOutcome.Succeeded, off.Outcome);
        Assert.Equal(Consistency.ShutOff, off.Consistency);
        Assert.DoesNotContain(hv.Calls, c => c.StartsWith("checkpoint-", StringComparison.Ordinal));
        var kept = CheckpointSteps.NameFor(live.RunId);
        Assert.Equal(kept, Assert.Single(hv.Checkpoints).Name);
        Assert.Equal(kept, Record().Checkpoint);
        Assert.StartsWith("the domain is shut off", off.Disks[0].FullReadReason, StringComparison.Ordinal);

        hv.Id = 8; // started again: the next live backup may use the carried checkpoint and rotates it away
        var next = await Run();
        Assert.Equal(CheckpointSteps.NameFor(next.RunId), Assert.Single(hv.Checkpoints).Name);
    }

    [Fact]
    public async Task A_changed_image_path_or_a_vanished_checkpoint_means_a_full_read_with_the_reason()
    {
        var vda = hv.AddDisk("vda");
        await Run();
        hv.Checkpoints.Clear(); // deleted behind our back

        var second = await Run();
        Assert.StartsWith("checkpoint backupd-", second.Disks[0].FullReadReason, StringComparison.Ordinal);
        Assert.EndsWith("no longer exists", second.Disks[0].FullReadReason, StringComparison.Ordinal);

        var moved = Path.Combine(dir, "moved.qcow2");
        File.Copy(vda.Chain[0].Path, moved);
        vda.Chain[0] = (moved, "qcow2");
        vda.PersistentSource = moved;
        var third = await Run();
        Assert.StartsWith("the disk's image changed", third.Disks[0].FullReadReason, StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_checkpoint_whose_bitmap_is_gone_is_deleted_metadata_only()
    {
        hv.AddDisk("vda");
        var first = await Run();
        hv.MissingBitmaps.Add(CheckpointSteps.NameFor(first.RunId));

        await Run();

        Assert.Contains($"checkpoint-delete {CheckpointSteps.NameFor(first.RunId)} metadata-only", hv.Calls);
        Assert.Single(hv.Checkpoints);
    }

    [Fact]
    public async Task The_safety_net_comes_every_full_every_backups_and_with_full()
    {
        hv.AddDisk("vda");
        var read = new ReadRequest(FullEvery: Backupd.Policies.Model.FullReadPeriod.EveryBackups(3));
        await Run(read);
        var steps = new List<bool>();
        var choices = new CheckpointSteps(hv, log);
        for (var i = 0; i < 4; i++)
        {
            var decided = choices.Decide(hv.Uuid, "x", live: true,
                [(DomainXml.ParseDisks(hv.GetXml(hv.Uuid, DomainXmlKind.Live))[0], await images.GetChainAsync(hv.Disks[0].Chain[0].Path, default))],
                target.Points[^1], read);
            steps.Add(decided.Disks["vda"].SafetyNet);
            Assert.True(decided.Disks["vda"].CanUseBitmap, decided.Disks["vda"].FullReadReason);
            // Pretend the run read incrementally (the planner's job): the record counts backups since the last full read.
            target.Stored = (_, s) => s with { ReadMode = decided.Disks["vda"].SafetyNet ? ReadModes.SafetyNet : ReadModes.Incremental };
            await Run(read);
        }
        Assert.Equal([false, false, true, false], steps);
        var forced = choices.Decide(hv.Uuid, "x", live: true,
            [(DomainXml.ParseDisks(hv.GetXml(hv.Uuid, DomainXmlKind.Live))[0], await images.GetChainAsync(hv.Disks[0].Chain[0].Path, default))],
            target.Points[^1], read with { Full = true });
        Assert.True(forced.Disks["vda"].SafetyNet);
    }

    /// <summary>A clock the test sets: full-every in days never depends on today's date.</summary>
    private sealed class SetClock(DateTimeOffset now) : TimeProvider
    {
        public DateTimeOffset Now { get; set; } = now;
        public override DateTimeOffset GetUtcNow() => Now;
    }

    [Fact]
    public async Task Full_every_in_days_counts_from_the_last_full_read_recorded_in_the_point_and_not_from_the_last_backup()
    {
        hv.AddDisk("vda");
        var t0 = new DateTimeOffset(2026, 3, 1, 2, 30, 0, TimeSpan.Zero);
        var clock = new SetClock(t0);
        var read = new ReadRequest(FullEvery: Backupd.Policies.Model.FullReadPeriod.EveryDays(14)) { Clock = clock };
        await Run(read);
        Assert.Equal(t0, Record().Disk("vda")!.LastFullRead);
        var choices = new CheckpointSteps(hv, log);
        async Task<DiskReadChoice> Decide() => choices.Decide(hv.Uuid, "x", live: true,
            [(DomainXml.ParseDisks(hv.GetXml(hv.Uuid, DomainXmlKind.Live))[0], await images.GetChainAsync(hv.Disks[0].Chain[0].Path, default))],
            target.Points[^1], read).Disks["vda"];

        // An incremental backup ten days later keeps the first run's time: the period runs from the last *full* read.
        clock.Now = t0.AddDays(10);
        Assert.False((await Decide()).SafetyNet);
        target.Stored = (_, s) => s with { ReadMode = ReadModes.Incremental };
        await Run(read);
        Assert.Equal(ReadModes.Incremental, Record().Disk("vda")!.Mode);
        Assert.Equal(t0, Record().Disk("vda")!.LastFullRead);

        clock.Now = t0.AddDays(14).AddSeconds(-1);
        Assert.False((await Decide()).SafetyNet);
        clock.Now = t0.AddDays(14);
        var due = await Decide();
        Assert.True(due.SafetyNet);
        Assert.True(due.CanUseBitmap, due.FullReadReason);

        // The safety-net run restarts the period at its own decision time.
        target.Stored = (_, s) => s with { ReadMode = ReadModes.SafetyNet };
        await Run(read);
        Assert.Equal(t0.AddDays(14), Record().Disk("vda")!.LastFullRead);
        clock.Now = t0.AddDays(20);
        Assert.False((await Decide()).SafetyNet);
    }

    [Fact]
    public async Task A_safety_net_mismatch_is_critical_and_the_next_backup_reads_in_full()
    {
        hv.AddDisk("vda");
        await Run();
        target.Stored = (_, s) => s with { ReadMode = ReadModes.SafetyNet, CleanButChanged = 2 };

        var checkedRun = await Run(new ReadRequest(Full: true));

        Assert.True(checkedRun.SafetyNetFailed);
        Assert.Contains(log.Entries, e => e.Level == LogLevel.Critical && e.Message.Contains("2 block(s)", StringComparison.Ordinal));
        target.Stored = (_, s) => s;
        var next = await Run();
        Assert.Contains("safety-net read found 2 block(s)", next.Disks[0].FullReadReason, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Recovery_deletes_the_checkpoint_of_a_run_that_made_no_point_and_rotates_after_one_that_did()
    {
        hv.AddDisk("vda");
        var first = await Run();
        var journal = new RunJournal(Options.StateDirectory);
        JournalEntry Left(string runId, string? pointId) => new()
        {
            RunId = runId, DomainUuid = hv.Uuid, DomainName = hv.Name, Persistent = true, WasActive = true, Disks = [],
            CheckpointNew = CheckpointSteps.NameFor(runId), PointId = pointId, Step = RunStep.CheckpointCreated,
        };
        // A run killed right after its checkpoint: no point.
        var dead = Left(OverlayNaming.NewRunId(DateTimeOffset.UtcNow), null);
        hv.CreateCheckpoint(hv.Uuid, CheckpointXml.Build(dead.CheckpointNew!, [("vda", true)]));
        journal.Write(dead);

        var report = await new Recovery(hv, images, Options, log).RecoverAllAsync(dryRun: false, default);

        Assert.True(report.AllResolved);
        Assert.Equal(CheckpointSteps.NameFor(first.RunId), Assert.Single(hv.Checkpoints).Name);
        Assert.Empty(journal.OpenEntries());

        // A run killed before the rotation: its point is durable, so its checkpoint is the last good one.
        var committed = Left(OverlayNaming.NewRunId(DateTimeOffset.UtcNow), "point-9");
        hv.CreateCheckpoint(hv.Uuid, CheckpointXml.Build(committed.CheckpointNew!, [("vda", true)]));
        journal.Write(committed with { Step = RunStep.Rotating });
        await new Recovery(hv, images, Options, log).RecoverAllAsync(dryRun: false, default);
        Assert.Equal(committed.CheckpointNew, Assert.Single(hv.Checkpoints).Name);
        Assert.Empty(journal.OpenEntries());
    }
}

/// <summary>The mapping step between the snapshot and the copy, with a fake planner.</summary>
[Collection("Faults")]
[Trait("Category", "Integration")] // the workflow's host-wide run lock
public sealed class ChangedBlockMappingTests : IDisposable
{
    private readonly string dir = Directory.CreateTempSubdirectory("bkd-map-").FullName;
    private readonly FakeHypervisor hv;
    private readonly FakeTarget target;
    private readonly FakeImages images;
    private readonly FakePlanner planner;
    private readonly ListLogger log = new();

    public ChangedBlockMappingTests()
    {
        hv = new FakeHypervisor(dir) { RecordCheckpointCalls = true };
        images = new FakeImages(hv.Calls);
        target = new FakeTarget(hv.Calls);
        planner = new FakePlanner(hv.Calls);
        Faults.Spec = null;
    }

    public void Dispose()
    {
        Faults.Spec = null;
        Directory.Delete(dir, recursive: true);
    }

    private WorkflowOptions Options => new() { StateDirectory = Path.Combine(dir, "state"), MinimumOverlayFreeBytes = 1, CommitRetryDelay = TimeSpan.Zero, ChangedBlockTracking = true };

    private Task<BackupResult> Run(ReadRequest? read = null) =>
        new BackupWorkflow(hv, images, target, Options, log) { Planner = planner }
            .RunAsync(new BackupRequest(hv.Name, [], [], QuiesceMode.Off) { Read = read ?? new() }, default);

    public sealed class FakePlanner(List<string> calls) : IChangedBlockPlanner
    {
        public Func<string, Backupd.Daemon.ChangedBlocks.PlanOutcome>? Outcome { get; set; }
        public List<int> Stopped { get; } = [];

        public Task<Backupd.Daemon.ChangedBlocks.PlanOutcome> PlanAsync(string baseFile, string bitmapName, int blockSize, Action<int>? exportStarted, CancellationToken ct)
        {
            calls.Add($"map {Path.GetFileName(baseFile)} {bitmapName} {blockSize}");
            exportStarted?.Invoke(4242);
            var length = new FileInfo(baseFile).Length;
            var dirty = new DirtyClusters.Builder().Add(0, 65536, true).Add(65536, length - 65536, false).Build(length);
            return Task.FromResult(Outcome?.Invoke(baseFile) ?? new Backupd.Daemon.ChangedBlocks.PlanOutcome(ReadPlan.Build(length, blockSize, [new GuestMapping(0, length, 0)], dirty), null, TimeSpan.Zero));
        }

        public void StopLeftoverExport(int pid)
        {
            calls.Add($"stop-export {pid}");
            Stopped.Add(pid);
        }
    }

    [Fact]
    public async Task The_last_good_bitmap_is_mapped_on_the_frozen_base_and_its_plan_handed_to_the_copy()
    {
        var vda = hv.AddDisk("vda");
        var first = await Run();
        Assert.DoesNotContain(hv.Calls, c => c.StartsWith("map", StringComparison.Ordinal)); // nothing to trust yet
        hv.Calls.Clear();

        await Run();

        var map = $"map {Path.GetFileName(vda.Chain[0].Path)} {CheckpointSteps.NameFor(first.RunId)} 65536";
        Assert.True(hv.Calls.IndexOf("snapshot") < hv.Calls.IndexOf(map), string.Join(", ", hv.Calls));
        Assert.True(hv.Calls.IndexOf(map) < hv.Calls.IndexOf("copy vda.0 vda.qcow2"));
        var asked = target.Asked["vda.0"];
        Assert.NotNull(asked);
        Assert.Equal("point-1", asked.BasedOnVersionId);
        Assert.False(asked.SafetyNet);
        Assert.Empty(new RunJournal(Options.StateDirectory).OpenEntries());
    }

    [Fact]
    public async Task A_planner_without_a_plan_means_a_full_read_with_its_reason()
    {
        hv.AddDisk("vda");
        await Run();
        planner.Outcome = _ => new Backupd.Daemon.ChangedBlocks.PlanOutcome(null, "bitmap backupd-x is in-use (QEMU did not close the image cleanly)", TimeSpan.Zero);

        var result = await Run();

        Assert.Null(target.Asked["vda.0"]);
        Assert.Equal("bitmap backupd-x is in-use (QEMU did not close the image cleanly)", result.Disks[0].FullReadReason);
        Assert.Equal("full", result.Disks[0].ReadMode);
    }

    [Fact]
    public async Task Full_asks_for_a_safety_net_read_with_the_plan()
    {
        hv.AddDisk("vda");
        await Run();

        await Run(new ReadRequest(Full: true));

        Assert.True(target.Asked["vda.0"]!.SafetyNet);
    }

    [Fact]
    public async Task A_fault_during_the_map_still_stops_the_export_before_the_commit_and_discards_the_new_checkpoint()
    {
        hv.AddDisk("vda");
        var first = await Run();
        hv.Calls.Clear();
        Faults.Spec = $"{Faults.MidMap}:throw";

        var result = await Run();

        Assert.Equal(RunOutcome.Failed, result.Outcome);
        Assert.True(hv.Calls.IndexOf("stop-export 4242") < hv.Calls.IndexOf("commit vda"), string.Join(", ", hv.Calls));
        Assert.Equal(CheckpointSteps.NameFor(first.RunId), Assert.Single(hv.Checkpoints).Name);
    }

    [Fact]
    public async Task Recovery_stops_an_export_a_dead_run_journaled()
    {
        hv.AddDisk("vda");
        var journal = new RunJournal(Options.StateDirectory);
        journal.Write(new JournalEntry
        {
            RunId = OverlayNaming.NewRunId(DateTimeOffset.UtcNow), DomainUuid = hv.Uuid, DomainName = hv.Name, Persistent = true, WasActive = true,
            Disks = [], ExportPid = 777, Step = RunStep.Mapping,
        });

        var report = await new Recovery(hv, images, Options, log) { Planner = planner }.RecoverAllAsync(dryRun: false, default);

        Assert.True(report.AllResolved);
        Assert.Equal([777], planner.Stopped);
        Assert.Empty(journal.OpenEntries());
    }
}
