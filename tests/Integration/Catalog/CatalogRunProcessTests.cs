using System.Diagnostics;
using System.Globalization;
using System.Text.Json;
using Backupd.Daemon.Workflow;
using Backupd.Integration.Fixtures;
using Backupd.Storage.Catalog;

namespace Backupd.Integration.Catalog;

/// <summary>
/// `backupd backup --domain` (through the catalog by default) as separate processes: domain exclusivity across processes
/// (also against a --no-catalog run), kills mid-run and mid-commit, SIGTERM in the copy and in the commit.
/// </summary>
[Trait("Category", "Integration")]
public sealed class CatalogRunProcessTests(PostgresDatabase database) : CatalogProcessTestBase(database)
{
    /// <summary>The pid of the process <see cref="RunWithDiagnosticsAsync"/> started last.</summary>
    private int? runningPid;

    /// <summary>Like BackupdProcess.RunAsync, but a run that hangs fails within 3 minutes with what it printed so far.</summary>
    private Task<(int ExitCode, string Stdout, string Stderr)> RunWithDiagnosticsAsync(params string[] args) => RunWithDiagnosticsAsync(null, args);

    private async Task<(int ExitCode, string Stdout, string Stderr)> RunWithDiagnosticsAsync(IDictionary<string, string>? environment, params string[] args)
    {
        using var process = Process.Start(BackupdProcess.StartInfo(environment, ["--config", Config.Path, .. args]))!;
        runningPid = process.Id;
        var stdout = new System.Text.StringBuilder();
        var stderr = new System.Text.StringBuilder();
        process.OutputDataReceived += (_, e) => { lock (stdout) stdout.AppendLine(e.Data); };
        process.ErrorDataReceived += (_, e) => { lock (stderr) stderr.AppendLine(e.Data); };
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        using var timeout = new CancellationTokenSource(TimeSpan.FromMinutes(3));
        try
        {
            await process.WaitForExitAsync(timeout.Token);
        }
        catch (OperationCanceledException)
        {
            await Tools.TryRunAsync("sh", "-c", $"cat /proc/{process.Id}/task/*/wchan > /tmp/bkd-hang-{process.Id}.wchan 2>&1");
            process.Kill(entireProcessTree: true);
            lock (stdout) lock (stderr)
                throw new TimeoutException($"backupd {string.Join(' ', args)} (pid {process.Id}) hung for 3 minutes; stdout:\n{stdout}\nstderr:\n{stderr}");
        }
        process.WaitForExit();
        lock (stdout) lock (stderr) return (process.ExitCode, stdout.ToString(), stderr.ToString());
    }

    [Fact]
    public async Task Two_concurrent_backups_of_one_domain_exactly_one_runs_and_the_other_names_the_holder()
    {
        await using var vm = await TestVm.CreateAsync(new DiskSpec("vda", SizeBytes: 256 * MiB));
        await vm.StartAsync();
        await vm.WriteAsGuestAsync("vda", 8 * MiB, 0x5a, 96 * MiB);

        // The overlap must not depend on how long the copy takes versus how long a second `dotnet` takes to start
        // (on a loaded 2-core box the first run can finish first), nor on a poll catching the overlay in time. So the
        // first run stops itself (SIGSTOP) right after its snapshot, holding the domain lock; the second runs to its
        // end meanwhile, then the first is continued.
        var first = RunWithDiagnosticsAsync(new Dictionary<string, string> { [Faults.EnvironmentVariable] = $"{Faults.AfterSnapshot}:stop" },
            "backup", "--domain", vm.Name, "--to", Repository);
        var firstPid = runningPid!.Value;
        var deadline = DateTime.UtcNow.AddSeconds(120);
        while (!BackupdProcess.IsStopped(firstPid))
        {
            if (first.IsCompleted) Assert.Fail($"the first backup ended before it reached its snapshot: {(await first).Stderr}");
            Assert.True(DateTime.UtcNow < deadline, "the first backup did not reach its snapshot in 120 s");
            await Task.Delay(20);
        }
        Assert.Contains(Directory.EnumerateFiles(vm.Directory), OverlayNaming.IsOverlay);
        (int ExitCode, string Stdout, string Stderr) second;
        try
        {
            second = await RunWithDiagnosticsAsync("backup", "--domain", vm.Name, "--to", Repository);
        }
        finally
        {
            await Tools.RunAsync("kill", "-CONT", firstPid.ToString(System.Globalization.CultureInfo.InvariantCulture));
        }
        var winner = await first;

        Assert.True(winner.ExitCode == 0, $"the first backup exited {winner.ExitCode}: {winner.Stderr}");
        Assert.True(second.ExitCode == 4, $"the second backup exited {second.ExitCode}, not 4 (busy): {second.Stderr}");
        Assert.Contains("is being backed up by", second.Stderr, StringComparison.Ordinal);
        Assert.Contains("pid", second.Stderr, StringComparison.Ordinal);
        await using var store = new CatalogStore(Database.ConnectionString);
        var runs = await store.ListRunsAsync(Guid.Parse(vm.Uuid), 10, CancellationToken.None);
        Assert.Equal(RunStates.Succeeded, Assert.Single(runs).State);
        Assert.Single(await store.ListPointsAsync(Guid.Parse(vm.Uuid), null, CancellationToken.None));
        // The holder is named by host and pid (and by run id once it has recorded its run, a few ms after taking the lock).
        Assert.Contains($"by {Environment.MachineName} pid {firstPid} ", second.Stderr, StringComparison.Ordinal);
    }

    /// <summary>Starts the VM, writes 1 MiB as the guest, runs a backup killed (SIGKILL) at <paramref name="fault"/>; returns the one run row it left.</summary>
    private async Task<RunRow> KilledRunAsync(TestVm vm, string fault)
    {
        await vm.StartAsync();
        await vm.WriteAsGuestAsync("vda", 2 * MiB, 0x61, MiB);
        var killed = await Backupd(new Dictionary<string, string> { [Faults.EnvironmentVariable] = $"{fault}:kill" },
            "backup", "--domain", vm.Name, "--to", Repository, "--json");
        Assert.Equal(137, killed.ExitCode);
        await using var store = new CatalogStore(Database.ConnectionString);
        return Assert.Single(await store.ListRunsAsync(Guid.Parse(vm.Uuid), 10, CancellationToken.None));
    }

    [Fact]
    public async Task A_run_killed_mid_copy_becomes_interrupted_without_a_restore_point_and_the_next_run_succeeds()
    {
        await using var vm = await TestVm.CreateAsync(new DiskSpec("vda"));
        var left = await KilledRunAsync(vm, Faults.MidCopy);
        var uuid = Guid.Parse(vm.Uuid);
        await using var store = new CatalogStore(Database.ConnectionString);
        Assert.Equal(RunStates.Running, left.State); // nobody has looked yet
        // The workflow reports bytes once copying; before that the run's last recorded step is the snapshot phase.
        Assert.Contains(left.Step, new[] { "snapshot", "copy" });

        // What the daemon does at start-up (the killed process's pid is gone and its lock session ended).
        var marked = await store.MarkInterruptedRunsAsync(ProcessIdentity.Current, CancellationToken.None);
        Assert.Contains(left.Id, marked);
        var interrupted = (await store.GetRunAsync(left.Id, CancellationToken.None))!;
        Assert.Equal((RunStates.Interrupted, (string?)null), (interrupted.State, interrupted.RestorePointId));
        Assert.Empty(await store.ListPointsAsync(uuid, null, CancellationToken.None));
        var status = JsonDocument.Parse((await Backupd("status", "--json")).Stdout).RootElement;
        Assert.Equal("interrupted", status.GetProperty("lastPerDomain").EnumerateArray().Single(r => r.GetProperty("id").GetInt64() == left.Id).GetProperty("state").GetString());

        // The next run recovers the overlay the killed one left, and records a point.
        var next = await Backupd("backup", "--domain", vm.Name, "--to", Repository, "--json");
        Assert.True(next.ExitCode == 0, next.Stderr);
        Assert.Single(await store.ListPointsAsync(uuid, null, CancellationToken.None));
        Assert.True(await vm.GuestReadMatchesAsync("vda", 2 * MiB, MiB, 0x61));
    }

    [Fact]
    public async Task The_daemon_marks_runs_of_dead_processes_interrupted_when_it_starts()
    {
        await using var store = new CatalogStore(Database.ConnectionString);
        // The ghost lives until its start token is read (a short-lived one may be gone before that), then dies.
        using var ghost = Process.Start(new ProcessStartInfo("sleep", "300"))!;
        var token = ProcessIdentity.StartTokenOf(ghost.Id);
        Assert.NotNull(token);
        ghost.Kill();
        await ghost.WaitForExitAsync();
        var run = await store.StartRunAsync(new RunStart(Guid.NewGuid(), "vm-ghost", "schedule", "backupd"), new ProcessIdentity(Environment.MachineName, ghost.Id, token), CancellationToken.None);

        using var daemon = Process.Start(BackupdProcess.StartInfo(null, "--config", Config.Path, "daemon"))!;
        try
        {
            var deadline = DateTime.UtcNow.AddSeconds(60);
            while ((await store.GetRunAsync(run, CancellationToken.None))!.State == RunStates.Running)
            {
                Assert.True(DateTime.UtcNow < deadline, "the daemon did not mark the run interrupted within 60 s");
                await Task.Delay(100);
            }
        }
        finally
        {
            daemon.Kill(entireProcessTree: true);
        }
        Assert.Equal(RunStates.Interrupted, (await store.GetRunAsync(run, CancellationToken.None))!.State);
    }

    [Fact]
    public async Task The_daemon_writes_the_records_that_runs_kept_while_the_catalog_was_away_when_it_starts()
    {
        await using var store = new CatalogStore(Database.ConnectionString);
        using var ghost = Process.Start(new ProcessStartInfo("sleep", "300"))!;
        var token = ProcessIdentity.StartTokenOf(ghost.Id);
        Assert.NotNull(token);
        ghost.Kill();
        await ghost.WaitForExitAsync();
        var uuid = Guid.NewGuid();
        var run = await store.StartRunAsync(new RunStart(uuid, "vm-kept", "schedule", "backupd"), new ProcessIdentity(Environment.MachineName, ghost.Id, token), CancellationToken.None);
        var pending = new Backupd.Daemon.Runs.PendingRunRecords(Config.StateDirectory);
        pending.Save(new Backupd.Daemon.Runs.PendingRunRecord(run, uuid, "vm-kept", RunStates.Failed, "copy", 5, 10, "copy: No space left on device",
            new RunStats(5, 5), null, Environment.MachineName, ghost.Id, token));

        using var daemon = Process.Start(BackupdProcess.StartInfo(null, "--config", Config.Path, "daemon"))!;
        try
        {
            var deadline = DateTime.UtcNow.AddSeconds(60);
            while ((await store.GetRunAsync(run, CancellationToken.None))!.State == RunStates.Running)
            {
                Assert.True(DateTime.UtcNow < deadline, "the daemon did not write the kept record within 60 s");
                await Task.Delay(100);
            }
        }
        finally
        {
            daemon.Kill(entireProcessTree: true);
        }
        var finished = (await store.GetRunAsync(run, CancellationToken.None))!;
        Assert.Equal((RunStates.Failed, "copy", "copy: No space left on device"), (finished.State, finished.Step, finished.Error));
        Assert.Empty(pending.List());
    }

    /// <summary>
    /// Stopped by a signal in its copy step: the overlay is merged back as always, and the catalog calls the run what
    /// it was (`interrupted`, the stop's word), not `failed`, with no restore point.
    /// </summary>
    [Fact]
    public async Task Sigterm_in_the_copy_records_the_run_interrupted_without_a_point_and_the_vm_on_its_base()
    {
        // 64 MiB of data at 4 MiB/s: the copy lasts ~16 s, long enough to be caught in it.
        await using var vm = await TestVm.CreateAsync(new DiskSpec("vda", SizeBytes: 64 * MiB, FillPattern: null));
        await TestVm.WritePatternAsync(vm.Disk("vda").Path, "qcow2", 0, 64 * MiB, 0x5a);
        await vm.StartAsync();
        var uuid = Guid.Parse(vm.Uuid);
        await using var store = new CatalogStore(Database.ConnectionString);
        using var process = BackupdProcess.StartCollecting(null, out var output,
            "--config", Config.Path, "backup", "--domain", vm.Name, "--to", Path.Combine(Config.Directory, "repo"), "--bandwidth", "4MiB/s", "--json");

        var deadline = DateTime.UtcNow.AddSeconds(90);
        while ((await store.ListRunsAsync(uuid, 10, CancellationToken.None)).SingleOrDefault() is not { Step: "copy", ProgressBytes: > 0 } && !process.HasExited)
        {
            Assert.True(DateTime.UtcNow < deadline, $"the run did not reach its copy step in 90 s; output:\n{string.Join('\n', output)}");
            await Task.Delay(100);
        }
        Assert.False(process.HasExited, $"the backup ended before the signal; output:\n{string.Join('\n', output)}");
        await Tools.RunAsync("kill", "-TERM", process.Id.ToString(CultureInfo.InvariantCulture));
        await process.WaitForExitAsync();

        Assert.Equal(1, process.ExitCode);
        var run = Assert.Single(await store.ListRunsAsync(uuid, 10, CancellationToken.None));
        Assert.Equal((RunStates.Interrupted, (string?)null), (run.State, run.RestorePointId));
        Assert.Contains("canceled", run.Error, StringComparison.Ordinal);
        Assert.Empty(await store.ListPointsAsync(uuid, null, CancellationToken.None));
        Assert.Equal(vm.Disk("vda").Path, await vm.ActiveSourceAsync("vda"));
        Assert.DoesNotContain(Directory.EnumerateFiles(vm.Directory), OverlayNaming.IsOverlay);
        Assert.Equal("running", await vm.StateAsync());
    }

    [Fact]
    public async Task A_run_killed_in_the_commit_shows_step_commit_and_recover_domain_finishes_it_interrupted_naming_catalog_rebuild()
    {
        await using var vm = await TestVm.CreateAsync(new DiskSpec("vda"));
        var left = await KilledRunAsync(vm, Faults.MidCommit);
        var uuid = Guid.Parse(vm.Uuid);
        await using var store = new CatalogStore(Database.ConnectionString);
        Assert.Equal((RunStates.Running, "commit"), (left.State, left.Step));

        // `recover` knows the catalog from the configuration: the overlay is merged back and the dead run is finished.
        var recover = await Backupd("recover", "--domain", vm.Name, "--json");
        Assert.True(recover.ExitCode == 0, recover.Stderr);
        var catalog = JsonDocument.Parse(recover.Stdout).RootElement.GetProperty("catalog");
        Assert.Equal([left.Id], catalog.GetProperty("interrupted").EnumerateArray().Select(e => e.GetInt64()));
        var finished = (await store.GetRunAsync(left.Id, CancellationToken.None))!;
        Assert.Equal((RunStates.Interrupted, "commit"), (finished.State, finished.Step));
        Assert.Contains("backupd catalog rebuild", finished.Error, StringComparison.Ordinal);
        Assert.Equal(vm.Disk("vda").Path, await vm.ActiveSourceAsync("vda"));
        Assert.DoesNotContain(Directory.EnumerateFiles(vm.Directory), OverlayNaming.IsOverlay);
        Assert.True(await vm.GuestReadMatchesAsync("vda", 2 * MiB, MiB, 0x61));
    }

    /// <summary>
    /// A signal after the copy: the point is durable and a commit is finished, not stopped, so the run is what it is,
    /// `succeeded` with its point, exit 0; stderr says when the signal came.
    /// </summary>
    [Fact]
    public async Task Sigterm_during_the_commit_finishes_it_records_the_point_and_exits_0_with_a_note()
    {
        await using var vm = await SlowCommitRun.CreateVmAsync();
        var uuid = Guid.Parse(vm.Uuid);
        await using var store = new CatalogStore(Database.ConnectionString);
        using var run = await SlowCommitRun.StartAsync(vm, Config.Path, Repository, store);
        await run.WaitForAsync(r => r is { Step: "commit" }, "the commit step");

        await Tools.RunAsync("kill", "-TERM", run.Process.Id.ToString(CultureInfo.InvariantCulture));

        Assert.True(await run.ExitCodeAsync() == 0, run.AllOutput);
        Assert.Contains("SIGTERM came after the copy: the commit was finished", run.AllOutput, StringComparison.Ordinal);
        var recorded = Assert.Single(await store.ListRunsAsync(uuid, 10, CancellationToken.None));
        var point = Assert.Single(await store.ListPointsAsync(uuid, null, CancellationToken.None));
        Assert.Equal((RunStates.Succeeded, point.Id), (recorded.State, recorded.RestorePointId));
        Assert.Equal(vm.Disk("vda").Path, await vm.ActiveSourceAsync("vda"));
        Assert.DoesNotContain(Directory.EnumerateFiles(vm.Directory), OverlayNaming.IsOverlay);
        Assert.True(await vm.GuestReadMatchesAsync("vda", SlowCommitRun.GuestOffset, SlowCommitRun.GuestBytes, SlowCommitRun.GuestPattern));
    }

    /// <summary>A --no-catalog run takes no catalog lock but holds the host's domain lock: a catalog run meanwhile is refused like any busy domain.</summary>
    [Fact]
    public async Task A_catalog_run_while_a_no_catalog_run_holds_the_domain_is_refused_with_exit_4_and_records_nothing()
    {
        await using var vm = await TestVm.CreateAsync(new DiskSpec("vda", SizeBytes: 64 * MiB, FillPattern: null));
        await TestVm.WritePatternAsync(vm.Disk("vda").Path, "qcow2", 0, 64 * MiB, 0x5a);
        await vm.StartAsync();
        using var first = BackupdProcess.StartCollecting(null, out var output,
            "--config", Config.Path, "backup", "--domain", vm.Name, "--to", Repository, "--bandwidth", "4MiB/s", "--no-catalog", "--json");
        try
        {
            await Eventually.WaitUntilAsync(() => Directory.EnumerateFiles(vm.Directory).Any(OverlayNaming.IsOverlay) || first.HasExited,
                TimeSpan.FromSeconds(90), "the --no-catalog run's overlay", output);
            Assert.False(first.HasExited, string.Join('\n', output));

            var second = await Backupd("backup", "--domain", vm.Name, "--to", Repository, "--json");

            Assert.True(second.ExitCode == 4, $"exit {second.ExitCode}: {second.Stderr}");
            Assert.Contains("another backupd run is working on domain", second.Stderr, StringComparison.Ordinal);
            Assert.True(first.HasExited is false, "the --no-catalog run should still be copying");
            await using var store = new CatalogStore(Database.ConnectionString);
            Assert.Empty(await store.ListRunsAsync(Guid.Parse(vm.Uuid), 10, CancellationToken.None));
            await first.WaitForExitAsync();
            Assert.True(first.ExitCode == 0, string.Join('\n', output));
        }
        finally
        {
            if (!first.HasExited) first.Kill(entireProcessTree: true);
        }
    }
}
