using System.Diagnostics;
using Backupd.Integration.Fixtures;
using Backupd.Storage.Catalog;
using Dapper;
using Npgsql;

namespace Backupd.Integration.Catalog;

#pragma warning disable CA1001 // the store is disposed in IAsyncLifetime.DisposeAsync, which xunit calls
/// <summary>Catalog store against a real PostgreSQL: one migrated database for the class, unique domains per test.</summary>
[Trait("Category", "Integration")]
public sealed class CatalogStoreTests(PostgresDatabase database) : IClassFixture<PostgresDatabase>, IAsyncLifetime
{
    private CatalogStore _store = null!;
#pragma warning restore CA1001
    private static readonly ProcessIdentity Self = ProcessIdentity.Current;

    public async Task InitializeAsync()
    {
        await CatalogMigrator.MigrateAsync(database.ConnectionString, CancellationToken.None);
        _store = new CatalogStore(database.ConnectionString);
    }

    public async Task DisposeAsync() => await _store.DisposeAsync();

    public static TheoryData<string> HostileNames => new()
    {
        "it's",
        "x'; DROP TABLE runs; --",
        "\"quoted\" \\ back\\slash",
        "../../etc/passwd",
        "/absolute/path",
        "ünïcødé-名前-🙂",
        "tab\tnew\nline",
        "$1 @p :name ?",
    };

    [Theory]
    [MemberData(nameof(HostileNames))]
    public async Task Hostile_names_and_paths_are_stored_verbatim_and_never_executed(string hostile)
    {
        var uuid = Guid.NewGuid();
        var pointId = "p-" + hostile;
        var runId = await _store.StartRunAsync(new RunStart(uuid, hostile, hostile, hostile, hostile), Self, CancellationToken.None);
        var point = Point(uuid, hostile, pointId, DateTimeOffset.UtcNow, sourcePath: hostile, domainXml: $"<domain><name>{hostile}</name></domain>");
        await _store.CompleteRunAsync(runId, new RunStats(Consistency: hostile), point, CancellationToken.None);

        var detail = await _store.GetPointAsync(pointId, CancellationToken.None);
        Assert.NotNull(detail);
        Assert.Equal(hostile, detail.Point.DomainName);
        Assert.Equal(pointId, detail.Point.Id);
        Assert.Equal(point.DomainXml, detail.DomainXml);
        Assert.Equal(point.Files.Select(f => (f.SourcePath, f.BackingFile)).Order(), detail.Files.Select(f => (f.SourcePath, f.BackingFile)).Order());
        Assert.StartsWith(hostile, detail.Files[0].SourcePath, StringComparison.Ordinal);
        Assert.Equal(hostile, detail.Run!.PolicyName);
        Assert.Equal(hostile, detail.Run.RequestedBy);
        var found = Assert.Single(await _store.FindDomainsAsync(hostile, CancellationToken.None));
        Assert.Equal(uuid, found.Uuid);
        Assert.Equal(CatalogSchema.ExpectedTables, await CatalogSchema.TablesAsync(database.ConnectionString));
    }

    [Fact]
    public async Task A_completed_run_has_its_point_and_a_failed_run_has_none()
    {
        var uuid = Guid.NewGuid();
        var ok = await _store.StartRunAsync(new RunStart(uuid, "vm-a", "cli", "root"), Self, CancellationToken.None);
        await _store.UpdateProgressAsync(ok, "copy", 50, 200, CancellationToken.None);
        var running = await _store.GetRunAsync(ok, CancellationToken.None);
        Assert.Equal(("running", "copy", 25.0), (running!.State, running.Step, running.Percent!.Value));
        await _store.CompleteRunAsync(ok, new RunStats(200, 100, TimeSpan.FromSeconds(3), TimeSpan.FromSeconds(4), TimeSpan.FromMilliseconds(500), "quiesced"),
            Point(uuid, "vm-a", "pt-ok-" + uuid, DateTimeOffset.UtcNow), CancellationToken.None);
        var failed = await _store.StartRunAsync(new RunStart(uuid, "vm-a", "cli", "root"), Self, CancellationToken.None);
        await _store.FailRunAsync(failed, RunStates.Failed, "copy failed: disk full", new RunStats(BytesRead: 7), CancellationToken.None);

        var okRow = await _store.GetRunAsync(ok, CancellationToken.None);
        Assert.Equal((RunStates.Succeeded, "pt-ok-" + uuid, TimeSpan.FromSeconds(3), TimeSpan.FromSeconds(4), TimeSpan.FromMilliseconds(500)),
            (okRow!.State, okRow.RestorePointId, okRow.CopyTime, okRow.OverlayLifetime, okRow.CommitTime));
        var failedRow = await _store.GetRunAsync(failed, CancellationToken.None);
        Assert.Equal((RunStates.Failed, (string?)null, "copy failed: disk full", 7L), (failedRow!.State, failedRow.RestorePointId, failedRow.Error, failedRow.BytesRead));
        Assert.Single(await _store.ListPointsAsync(uuid, null, CancellationToken.None));
        var status = await _store.GetStatusAsync(CancellationToken.None);
        Assert.Equal(failed, Assert.Single(status.LastPerDomain, r => r.DomainUuid == uuid).Id);
    }

    [Fact]
    public async Task List_is_newest_first_filters_by_since_and_follows_a_renamed_domain()
    {
        var uuid = Guid.NewGuid();
        var t0 = DateTimeOffset.UtcNow.AddHours(-3);
        foreach (var (i, name) in new[] { (0, "old-name"), (1, "old-name"), (2, "new-name") })
        {
            var run = await _store.StartRunAsync(new RunStart(uuid, name, "cli", "root"), Self, CancellationToken.None);
            await _store.CompleteRunAsync(run, new RunStats(), Point(uuid, name, $"pt{i}-{uuid}", t0.AddHours(i)), CancellationToken.None);
        }

        var all = await _store.ListPointsAsync(uuid, null, CancellationToken.None);
        Assert.Equal([$"pt2-{uuid}", $"pt1-{uuid}", $"pt0-{uuid}"], all.Select(p => p.Id));
        Assert.Equal((2, 3, 3 * 1000L), (all[0].Disks, all[0].Files, all[0].TotalFileSize));
        var recent = await _store.ListPointsAsync(uuid, t0.AddMinutes(30), CancellationToken.None);
        Assert.Equal([$"pt2-{uuid}", $"pt1-{uuid}"], recent.Select(p => p.Id));
        Assert.Equal(uuid, Assert.Single(await _store.FindDomainsAsync("new-name", CancellationToken.None)).Uuid);
        Assert.Equal(uuid, Assert.Single(await _store.FindDomainsAsync("old-name", CancellationToken.None)).Uuid);
        Assert.Equal("new-name", Assert.Single(await _store.FindDomainsAsync(uuid.ToString(), CancellationToken.None)).Name);
        Assert.Equal($"pt1-{uuid}", (await _store.FindPointAtAsync(uuid, t0.AddHours(1.5), CancellationToken.None))!.Id);
        Assert.Null(await _store.FindPointAtAsync(uuid, t0.AddHours(-1), CancellationToken.None));
    }

    [Fact]
    public async Task List_gives_each_point_the_read_mode_of_its_disks_top_files_and_mixed_when_they_differ()
    {
        var uuid = Guid.NewGuid();
        var t0 = DateTimeOffset.UtcNow.AddHours(-5);
        // (vda.0, vda.1 = a backing file, never the point's mode, vdb.0) -> expected.
        var cases = new (string? Vda, string? Backing, string? Vdb, string? Expected)[]
        {
            (null, null, null, null),
            ("incremental", "full", "incremental", "incremental"),
            ("full", null, "full", "full"),
            ("safety-net", "full", "safety-net", "safety-net"),
            ("incremental", "incremental", "full", "mixed"),
            ("incremental", null, null, "mixed"), // a disk with no mode recorded was read in full
        };
        for (var i = 0; i < cases.Length; i++)
        {
            var point = Point(uuid, "vm-modes", $"mode{i}-{uuid}", t0.AddMinutes(i));
            var modes = new[] { cases[i].Vda, cases[i].Backing, cases[i].Vdb };
            point = point with { Files = [.. point.Files.Select((f, n) => f with { ReadMode = modes[n] })] };
            var run = await _store.StartRunAsync(new RunStart(uuid, "vm-modes", "cli", "root"), Self, CancellationToken.None);
            await _store.CompleteRunAsync(run, new RunStats(), point, CancellationToken.None);
        }

        var listed = (await _store.ListPointsAsync(uuid, null, CancellationToken.None)).ToDictionary(p => p.Id, p => p.ReadMode);

        for (var i = 0; i < cases.Length; i++)
            Assert.True(cases[i].Expected == listed[$"mode{i}-{uuid}"], $"case {i}: expected {cases[i].Expected ?? "null"}, got {listed[$"mode{i}-{uuid}"] ?? "null"}");
        Assert.Equal(RestorePointSummary.MixedReadMode, listed[$"mode4-{uuid}"]);
    }

    [Fact]
    public async Task A_run_of_a_process_that_no_longer_exists_becomes_interrupted_at_start_up()
    {
        // A real process that ran and exited: its pid + start token name nobody now.
        var dead = await RunAndExitAsync();
        var uuid = Guid.NewGuid();
        var orphan = await _store.StartRunAsync(new RunStart(uuid, "vm-orphan", "schedule", "backupd"), dead, CancellationToken.None);
        // A live run on this host that holds its domain lock must be left alone.
        var liveUuid = Guid.NewGuid();
        await using var liveLock = await CatalogDomainLock.AcquireAsync(database.ConnectionString, liveUuid, "vm-live", Self, CancellationToken.None);
        var live = await _store.StartRunAsync(new RunStart(liveUuid, "vm-live", "cli", "root"), Self, CancellationToken.None);
        // A run recorded by another host whose lock nobody holds is gone too.
        var otherHost = await _store.StartRunAsync(new RunStart(Guid.NewGuid(), "vm-elsewhere", "schedule", "backupd"),
            new ProcessIdentity("some-other-host", 4242, "boot:1"), CancellationToken.None);

        var marked = await _store.MarkInterruptedRunsAsync(Self, CancellationToken.None);

        Assert.Contains(orphan, marked);
        Assert.Contains(otherHost, marked);
        Assert.DoesNotContain(live, marked);
        var row = await _store.GetRunAsync(orphan, CancellationToken.None);
        Assert.Equal(RunStates.Interrupted, row!.State);
        Assert.NotNull(row.FinishedAt);
        Assert.Contains($"process {dead.Pid}", row.Error, StringComparison.Ordinal);
        Assert.Equal(RunStates.Running, (await _store.GetRunAsync(live, CancellationToken.None))!.State);
        Assert.Empty(await _store.ListPointsAsync(uuid, null, CancellationToken.None));
    }

    [Fact]
    public async Task A_second_lock_attempt_reports_the_holder_and_the_lock_is_free_after_release()
    {
        var uuid = Guid.NewGuid();
        long runId;
        await using (var first = await CatalogDomainLock.AcquireAsync(database.ConnectionString, uuid, "vm-lock", Self, CancellationToken.None))
        {
            runId = await _store.StartRunAsync(new RunStart(uuid, "vm-lock", "cli", "root"), Self, CancellationToken.None);
            await first.SetRunAsync(runId, CancellationToken.None);

            var busy = await Assert.ThrowsAsync<DomainBusyException>(() =>
                CatalogDomainLock.AcquireAsync(database.ConnectionString, uuid, "vm-lock", new ProcessIdentity("other", 1, "x"), CancellationToken.None));

            Assert.Equal((Self.Host, Self.Pid, (long?)runId), (busy.Holder!.Host, busy.Holder.Pid, busy.Holder.RunId));
            Assert.InRange(busy.Holder.Since, DateTimeOffset.UtcNow.AddMinutes(-1), DateTimeOffset.UtcNow.AddSeconds(5));
            Assert.Contains($"run {runId}", busy.Message, StringComparison.Ordinal);
            Assert.True(await first.IsHeldAsync(CancellationToken.None));
        }
        await using var again = await CatalogDomainLock.AcquireAsync(database.ConnectionString, uuid, "vm-lock", Self, CancellationToken.None);
        Assert.True(await again.IsHeldAsync(CancellationToken.None));
    }

    [Fact]
    public async Task A_lost_lock_session_frees_the_domain_and_the_holder_notices()
    {
        var uuid = Guid.NewGuid();
        await using var held = await CatalogDomainLock.AcquireAsync(database.ConnectionString, uuid, "vm-crash", Self, CancellationToken.None);
        await using (var c = new NpgsqlConnection(database.ConnectionString))
        {
            // What a crashed process looks like to PostgreSQL: its session ends. With a timeout, pg_terminate_backend
            // returns once the backend is gone (its advisory locks released), not as soon as it was signalled.
            await c.ExecuteAsync("select pg_terminate_backend(pid, 20000) from pg_stat_activity where application_name = @app and datname = current_database()",
                new { app = $"backupd lock {Self.Host}:{Self.Pid}" });
        }
        Assert.False(await held.IsHeldAsync(CancellationToken.None));
        await using var next = await CatalogDomainLock.AcquireAsync(database.ConnectionString, uuid, "vm-crash", new ProcessIdentity("next", 2, "y"), CancellationToken.None);
        Assert.True(await next.IsHeldAsync(CancellationToken.None));
    }

    [Fact]
    public async Task Rebuild_adds_missing_points_keeps_run_links_and_reports_points_the_repository_lacks()
    {
        var uuid = Guid.NewGuid();
        var repo = "/srv/repo-" + uuid;
        var run = await _store.StartRunAsync(new RunStart(uuid, "vm-r", "cli", "root"), Self, CancellationToken.None);
        var kept = Point(uuid, "vm-r", "kept-" + uuid, DateTimeOffset.UtcNow.AddMinutes(-2), repository: repo);
        await _store.CompleteRunAsync(run, new RunStats(), kept, CancellationToken.None);
        var gone = Point(uuid, "vm-r", "gone-" + uuid, DateTimeOffset.UtcNow.AddMinutes(-3), repository: repo);
        await _store.RebuildAsync(repo, [gone], Self, CancellationToken.None);
        var fresh = Point(uuid, "vm-r", "fresh-" + uuid, DateTimeOffset.UtcNow.AddMinutes(-1), repository: repo);

        var result = await _store.RebuildAsync(repo, [kept, fresh], Self, CancellationToken.None);

        Assert.Equal((1, 1), (result.Added, result.Updated));
        Assert.Equal(["gone-" + uuid], result.NotInRepository);
        Assert.Equal(run, (await _store.GetPointAsync(kept.PointId, CancellationToken.None))!.Point.RunId);
        var freshDetail = await _store.GetPointAsync(fresh.PointId, CancellationToken.None);
        Assert.Equal(fresh.Files.Select(f => (f.FileKey, f.Digest)), freshDetail!.Files.Select(f => (f.FileKey, f.Digest)));
        Assert.Equal(fresh.CreatedAt.ToUnixTimeMilliseconds(), new DateTimeOffset(freshDetail.Point.CreatedAt).ToUnixTimeMilliseconds());
    }

    [Fact]
    public async Task Verify_events_are_recorded_and_shown_with_the_point()
    {
        var uuid = Guid.NewGuid();
        var run = await _store.StartRunAsync(new RunStart(uuid, "vm-v", "cli", "root"), Self, CancellationToken.None);
        var point = Point(uuid, "vm-v", "v-" + uuid, DateTimeOffset.UtcNow);
        await _store.CompleteRunAsync(run, new RunStats(), point, CancellationToken.None);

        await _store.RecordEventAsync(EventKinds.Verify, uuid, point.PointId, true, "all good", Self, CancellationToken.None);
        await _store.RecordEventAsync(EventKinds.Verify, uuid, point.PointId, false, "vda.0: digest mismatch at offset 65536", Self, CancellationToken.None);

        var detail = await _store.GetPointAsync(point.PointId, CancellationToken.None);
        Assert.Equal((false, "vda.0: digest mismatch at offset 65536"), (detail!.LastVerify!.Ok, detail.LastVerify.Detail));
    }

    internal static RestorePointRecord Point(Guid uuid, string name, string id, DateTimeOffset createdAt,
        string sourcePath = "/var/lib/libvirt/images/x.qcow2", string? domainXml = "<domain/>", string repository = "/srv/repo") =>
        new(id, uuid, name, repository, createdAt, domainXml, "crash-consistent",
        [
            new RestorePointFileRecord("vda.0", "vda", 0, sourcePath, "qcow2", sourcePath + ".base", 1 << 20, 1000, "blake3:" + id.GetHashCode().ToString("x8"), 10, 5),
            new RestorePointFileRecord("vda.1", "vda", 1, sourcePath + ".base", "qcow2", null, 1 << 20, 1000, "blake3:aa", 10, 5),
            new RestorePointFileRecord("vdb.0", "vdb", 0, sourcePath + ".vdb", "raw", null, 2 << 20, 1000, "blake3:bb", 10, 5),
        ]);

    private static async Task<ProcessIdentity> RunAndExitAsync()
    {
        // Alive until its start token is read (a 0.3 s sleep could be gone by then on a loaded box), then killed.
        using var p = Process.Start(new ProcessStartInfo("sleep", "300"))!;
        var token = ProcessIdentity.StartTokenOf(p.Id) ?? throw new InvalidOperationException("could not read /proc for a child process");
        p.Kill();
        await p.WaitForExitAsync();
        return new ProcessIdentity(Self.Host, p.Id, token);
    }
}
