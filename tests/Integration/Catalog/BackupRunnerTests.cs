using Backupd.Daemon.Runs;
using Backupd.Integration.Fixtures;
using Backupd.Storage.Catalog;
using Backupd.Storage.Repository;

namespace Backupd.Integration.Catalog;

/// <summary>The runner's catalog guarantees, with a real PostgreSQL and a scripted workflow.</summary>
#pragma warning disable CA1001 // disposed in IAsyncLifetime.DisposeAsync
[Trait("Category", "Integration")]
public sealed class BackupRunnerTests(PostgresDatabase database) : IClassFixture<PostgresDatabase>, IAsyncLifetime
{
    private CatalogStore _store = null!;
#pragma warning restore CA1001

    public async Task InitializeAsync()
    {
        await CatalogMigrator.MigrateAsync(database.ConnectionString, CancellationToken.None);
        _store = new CatalogStore(database.ConnectionString);
    }

    public async Task DisposeAsync()
    {
        await _store.DisposeAsync();
        foreach (var dir in ScriptedWorkflow.Created)
            if (Directory.Exists(dir)) Directory.Delete(dir, recursive: true);
    }

    [Fact]
    public async Task A_successful_run_records_progress_then_the_point_with_the_run()
    {
        var workflow = new ScriptedWorkflow("vm-ok") { Catalog = _store };
        var seen = new List<RunProgress>();
        var runner = new BackupRunner(_store, workflow);

        var result = await runner.RunAsync("vm-ok", new RunOrigin("cli", "alice"), new SyncProgress(seen.Add), CancellationToken.None);

        var run = await _store.GetRunAsync(result.CatalogRunId!.Value, CancellationToken.None);
        Assert.Equal((RunStates.Succeeded, "done", result.Point.PointId, "alice", "cli"), (run!.State, run.Step, run.RestorePointId, run.RequestedBy, run.Trigger));
        Assert.Equal((123L, 45L, 100L), (run.BytesRead, run.BytesWritten, run.ProgressBytes));
        Assert.Contains(seen, p => p.Step == "copy" && p.Bytes == 100);
        // While the workflow ran (before its commit returned) the catalog showed no point.
        Assert.Equal(0, workflow.PointsVisibleDuringRun);
        Assert.Equal([result.Point.PointId], (await _store.ListPointsAsync(workflow.Target.Uuid, null, CancellationToken.None)).Select(p => p.Id));
        var shown = await _store.GetPointAsync(result.Point.PointId, CancellationToken.None);
        Assert.Equal("<domain><name>vm-ok</name></domain>", shown!.DomainXml);
        Assert.Equal(("vda", 0, "raw", "crash-consistent"), (shown.Files.Single().Disk, shown.Files.Single().Depth, shown.Files.Single().Format, shown.Point.Consistency));
    }

    [Fact]
    public async Task A_failing_workflow_leaves_a_failed_run_no_point_and_a_free_lock()
    {
        var workflow = new ScriptedWorkflow("vm-fail") { Failure = new IOException("copy of vda.0 failed: No space left on device") };
        var runner = new BackupRunner(_store, workflow);

        var error = await Assert.ThrowsAsync<IOException>(() => runner.RunAsync("vm-fail", new RunOrigin("schedule", "policy nightly", "nightly"), null, CancellationToken.None));

        var run = Assert.Single(await _store.ListRunsAsync(workflow.Target.Uuid, 10, CancellationToken.None));
        Assert.Equal((RunStates.Failed, "nightly"), (run.State, run.PolicyName));
        Assert.Contains("copy: copy of vda.0 failed", run.Error, StringComparison.Ordinal);
        Assert.Empty(await _store.ListPointsAsync(workflow.Target.Uuid, null, CancellationToken.None));
        await using var free = await CatalogDomainLock.AcquireAsync(database.ConnectionString, workflow.Target.Uuid, "vm-fail", ProcessIdentity.Current, CancellationToken.None);
        Assert.NotNull(error);
    }

    [Fact]
    public async Task A_cancelled_run_is_interrupted_without_a_point()
    {
        var workflow = new ScriptedWorkflow("vm-cancel") { Block = new TaskCompletionSource() };
        var runner = new BackupRunner(_store, workflow);
        using var cts = new CancellationTokenSource();

        var running = runner.RunAsync("vm-cancel", new RunOrigin("cli", "root"), null, cts.Token);
        await workflow.Started.Task;
        await cts.CancelAsync();

        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => running);
        var run = Assert.Single(await _store.ListRunsAsync(workflow.Target.Uuid, 10, CancellationToken.None));
        Assert.Equal(RunStates.Interrupted, run.State);
        Assert.Empty(await _store.ListPointsAsync(workflow.Target.Uuid, null, CancellationToken.None));
    }

    [Fact]
    public async Task Two_concurrent_runs_of_one_domain_exactly_one_runs_and_the_other_names_it()
    {
        var workflow = new ScriptedWorkflow("vm-twice") { Block = new TaskCompletionSource() };
        var runner = new BackupRunner(_store, workflow);

        var first = runner.RunAsync("vm-twice", new RunOrigin("schedule", "backupd"), null, CancellationToken.None);
        await workflow.Started.Task;
        var busy = await Assert.ThrowsAsync<DomainBusyException>(() => runner.RunAsync("vm-twice", new RunOrigin("cli", "bob"), null, CancellationToken.None));
        workflow.Block.SetResult();
        var result = await first;

        Assert.Equal(1, workflow.Calls);
        Assert.Equal(result.CatalogRunId!.Value, busy.Holder!.RunId);
        Assert.Equal(ProcessIdentity.Current.Pid, busy.Holder.Pid);
        Assert.Single(await _store.ListRunsAsync(workflow.Target.Uuid, 10, CancellationToken.None));
    }

    [Fact]
    public async Task An_unknown_domain_is_reported_and_nothing_is_recorded()
    {
        var runner = new BackupRunner(_store, new ScriptedWorkflow("vm-x"));
        var error = await Assert.ThrowsAsync<DomainNotFoundException>(() => runner.RunAsync("no-such-vm", new RunOrigin("cli", "root"), null, CancellationToken.None));
        Assert.Contains("no-such-vm", error.Message, StringComparison.Ordinal);
    }

    /// <summary>The identity of a process that existed and is gone now (its pid + start token name nobody).</summary>
    private static async Task<ProcessIdentity> DeadProcessAsync()
    {
        using var ghost = System.Diagnostics.Process.Start(new System.Diagnostics.ProcessStartInfo("sleep", "300"))!;
        var token = ProcessIdentity.StartTokenOf(ghost.Id);
        Assert.NotNull(token);
        ghost.Kill();
        await ghost.WaitForExitAsync();
        return new ProcessIdentity(Environment.MachineName, ghost.Id, token);
    }

    private static PendingRunRecord Pending(long runId, BackupDomain target, string state, RestorePointRecord? point, ProcessIdentity writer) =>
        new(runId, target.Uuid, target.Name, state, point is null ? "copy" : "done", 40, 100, point is null ? "copy: lost" : null, new RunStats(7, 3), point, writer.Host, writer.Pid, writer.StartToken);

    [Fact]
    public async Task A_record_kept_by_a_process_that_ended_is_written_by_the_next_run_of_its_domain_with_its_point()
    {
        var workflow = new ScriptedWorkflow("vm-kept");
        var dead = await DeadProcessAsync();
        var lost = await _store.StartRunAsync(new RunStart(workflow.Target.Uuid, "vm-kept", "schedule", "backupd"), dead, CancellationToken.None);
        var outcome = await workflow.BackupAsync(workflow.Target, lost, new SyncProgress(_ => { }), CancellationToken.None); // its repository commit returned
        var point = RepositoryRecords.ToRecord(outcome.Point, outcome.RepositoryDirectory, "crash-consistent")!;
        var pending = new PendingRunRecords(workflow.Repository);
        pending.Save(Pending(lost, workflow.Target, RunStates.Succeeded, point, dead));

        var next = await new BackupRunner(_store, workflow) { Pending = pending }.RunAsync("vm-kept", new RunOrigin("cli", "root"), null, CancellationToken.None);

        var kept = (await _store.GetRunAsync(lost, CancellationToken.None))!;
        Assert.Equal((RunStates.Succeeded, point.PointId), (kept.State, kept.RestorePointId));
        Assert.Equal([next.Point.PointId, point.PointId], (await _store.ListPointsAsync(workflow.Target.Uuid, null, CancellationToken.None)).Select(p => p.Id));
        Assert.Empty(pending.List());
    }

    [Fact]
    public async Task Left_over_records_of_a_live_writer_wait_and_a_dead_writers_failure_is_written_with_its_step()
    {
        var live = new ScriptedWorkflow("vm-live");
        var gone = new ScriptedWorkflow("vm-gone");
        var dead = await DeadProcessAsync();
        var liveRun = await _store.StartRunAsync(new RunStart(live.Target.Uuid, "vm-live", "cli", "root"), ProcessIdentity.Current, CancellationToken.None);
        var goneRun = await _store.StartRunAsync(new RunStart(gone.Target.Uuid, "vm-gone", "cli", "root"), dead, CancellationToken.None);
        var pending = new PendingRunRecords(live.Repository);
        pending.Save(Pending(liveRun, live.Target, RunStates.Failed, null, ProcessIdentity.Current)); // still retrying: not ours to write
        pending.Save(Pending(goneRun, gone.Target, RunStates.Failed, null, dead));

        var done = await RunRecordFinisher.FinishLeftOversAsync(_store, pending, ProcessIdentity.Current, null, null, CancellationToken.None);

        Assert.Equal([goneRun], done.Recorded.Select(r => r.RunId));
        var failed = (await _store.GetRunAsync(goneRun, CancellationToken.None))!;
        Assert.Equal((RunStates.Failed, "copy", "copy: lost", 40L), (failed.State, failed.Step, failed.Error, failed.ProgressBytes));
        Assert.Equal(RunStates.Running, (await _store.GetRunAsync(liveRun, CancellationToken.None))!.State);
        Assert.Equal([liveRun], pending.List().Select(r => r.RunId));
        await _store.FailRunAsync(liveRun, RunStates.Failed, "test done", null, CancellationToken.None);
    }

    [Fact]
    public async Task A_kept_record_of_a_run_this_catalog_does_not_have_is_set_aside_and_blocks_nothing()
    {
        var workflow = new ScriptedWorkflow("vm-stranger");
        var dead = await DeadProcessAsync();
        var pending = new PendingRunRecords(workflow.Repository);
        pending.Save(Pending(long.MaxValue - 7, workflow.Target, RunStates.Failed, null, dead));

        var done = await RunRecordFinisher.FinishLeftOversAsync(_store, pending, ProcessIdentity.Current, workflow.Target.Uuid, null, CancellationToken.None);
        // The runs table has no such id: FailRunAsync changes nothing, which is not an error; the file is done with.
        Assert.Single(done.Recorded);
        Assert.Empty(pending.List());

        var point = RepositoryRecords.ToRecord((await workflow.BackupAsync(workflow.Target, 1, new SyncProgress(_ => { }), CancellationToken.None)).Point, Path.Combine(workflow.Repository, "repo"))!;
        pending.Save(Pending(long.MaxValue - 8, workflow.Target, RunStates.Succeeded, point, dead));
        done = await RunRecordFinisher.FinishLeftOversAsync(_store, pending, ProcessIdentity.Current, workflow.Target.Uuid, null, CancellationToken.None);

        Assert.Empty(done.Recorded);
        Assert.Empty(pending.List());
        Assert.True(File.Exists(Path.Combine(pending.Directory, $"{long.MaxValue - 8}.json.unrecorded")));
        var next = await new BackupRunner(_store, workflow) { Pending = pending }.RunAsync("vm-stranger", new RunOrigin("cli", "root"), null, CancellationToken.None);
        Assert.Equal(RunStates.Succeeded, (await _store.GetRunAsync(next.CatalogRunId!.Value, CancellationToken.None))!.State);
    }

    [Fact]
    public async Task A_busy_refusal_from_the_workflow_leaves_no_run_behind()
    {
        var workflow = new ScriptedWorkflow("vm-busy") { Failure = new Backupd.Daemon.Workflow.BackupRefusedException(Backupd.Daemon.Workflow.RefusalKind.Busy, "another backupd run is working on domain 'vm-busy'") };

        await Assert.ThrowsAsync<Backupd.Daemon.Workflow.BackupRefusedException>(() => new BackupRunner(_store, workflow).RunAsync("vm-busy", new RunOrigin("cli", "root"), null, CancellationToken.None));

        Assert.Empty(await _store.ListRunsAsync(workflow.Target.Uuid, 10, CancellationToken.None));
    }

    private sealed class SyncProgress(Action<RunProgress> action) : IProgress<RunProgress>
    {
        public void Report(RunProgress value) => action(value);
    }

    /// <summary>Plays the workflow's part: reports progress, optionally waits or fails, returns a "committed" point.</summary>
    private sealed class ScriptedWorkflow(string name) : IDomainBackup
    {
        public BackupDomain Target { get; } = new(Guid.NewGuid(), name);
        public Exception? Failure { get; init; }
        public TaskCompletionSource? Block { get; init; }
        public TaskCompletionSource Started { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);
        public CatalogStore? Catalog { get; init; }
        public static readonly System.Collections.Concurrent.ConcurrentBag<string> Created = [];
        public string Repository { get; } = Track(Directory.CreateTempSubdirectory("bkd-runner-").FullName);

        private static string Track(string dir)
        {
            Created.Add(dir);
            return dir;
        }
        public int Calls;
        public int PointsVisibleDuringRun = -1;

        public BackupDomain? Resolve(string nameOrUuid) => nameOrUuid == Target.Name || nameOrUuid == Target.Uuid.ToString() ? Target : null;

        public async Task<DomainBackupOutcome> BackupAsync(BackupDomain target, long? runId, IProgress<RunProgress> progress, CancellationToken ct)
        {
            Interlocked.Increment(ref Calls);
            progress.Report(new RunProgress("snapshot"));
            Started.TrySetResult();
            if (Block is not null) await Block.Task.WaitAsync(ct);
            progress.Report(new RunProgress("copy", 100, 100));
            if (Failure is not null) throw Failure;
            // A real repository commit of a small "disk", so the runner records what the repository returned.
            var source = Path.Combine(Repository, $"disk-{runId}.raw");
            await File.WriteAllBytesAsync(source, Enumerable.Repeat((byte)runId!.Value, 256 << 10).ToArray(), ct);
            using var repo = BackupRepository.Open(Path.Combine(Repository, "repo"));
            RestorePointInfo point;
            using (var session = repo.BeginBackup(target.Uuid.ToString(), target.Name, ct))
            {
                await session.AddFileAsync("vda.0", source, new SourceFileInfo(source, "raw", null, 256 << 10), null, ct);
                session.AttachMetadata(RepositoryRecords.DomainXmlMetadata, $"<domain><name>{target.Name}</name></domain>");
                if (Catalog is not null)
                    PointsVisibleDuringRun = (await Catalog.ListPointsAsync(target.Uuid, null, ct)).Count;
                point = session.Commit();
            }
            return new DomainBackupOutcome(point, repo.Directory, new RunStats(123, 45, TimeSpan.FromSeconds(1), TimeSpan.FromSeconds(2), TimeSpan.FromSeconds(0.5), "crash-consistent"));
        }
    }
}
