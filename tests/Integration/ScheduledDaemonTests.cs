using System.Collections.Concurrent;
using System.Diagnostics;
using System.Globalization;
using Backupd.Daemon.Workflow;
using Backupd.Storage.Catalog;
using Backupd.Storage.Repository;
using Backupd.Integration.Fixtures;
using static Backupd.Integration.Fixtures.Eventually;

namespace Backupd.Integration;

/// <summary>
/// `backupd daemon` as a process with a policy firing every few seconds against a real VM:
/// restore points accumulate, a SIGHUP with a broken policy file keeps the old schedule, and
/// SIGTERM stops cleanly with the VM on its base image.
/// </summary>
[Trait("Category", "Integration")]
public sealed class ScheduledDaemonTests(PostgresDatabase database) : IClassFixture<PostgresDatabase>
{
    internal static int PointCount(string repository)
    {
        if (!File.Exists(Path.Combine(repository, "repository.json"))) return 0;
        using var repo = BackupRepository.Open(repository);
        return repo.ListPoints().Count;
    }

    [Fact]
    public async Task Policy_fires_repeatedly_survives_a_broken_reload_and_stops_on_the_base_image()
    {
        await using var vm = await TestVm.CreateAsync(new DiskSpec("vda"));
        await vm.StartAsync();
        using var config = new TempConfig(database.ConnectionString);
        var repository = Path.Combine(config.Directory, "repo");
        var policyFile = Path.Combine(config.PoliciesDirectory, "fast.yaml");
        await File.WriteAllTextAsync(policyFile, $"name: fast\ndomains: [{vm.Name}]\nschedule: every 5s\nrepository: {repository}\nretention: {{keep-last: 2}}\nverify: {{after-backup: true}}\n");

        using var notify = new NotifySocket();
        using var process = BackupdProcess.StartCollecting(
            new Dictionary<string, string> { ["NOTIFY_SOCKET"] = notify.Path }, out var output, "--config", config.Path, "daemon");
        try
        {
            Assert.Equal("READY=1", await notify.ReceiveAsync(TimeSpan.FromSeconds(60)));
            // "policy fast: restore point P of DOMAIN in REPO (run N)"; not the "policy fast: restore point P verified" that follows it.
            int Backups() => output.Count(l => l.Contains("policy fast: restore point", StringComparison.Ordinal) && l.Contains($" of {vm.Name} in ", StringComparison.Ordinal));
            await WaitUntilAsync(() => Backups() >= 3, TimeSpan.FromSeconds(90), "three scheduled backups", output);
            await WaitUntilAsync(() => output.Any(l => l.Contains("policy fast: pruned restore point", StringComparison.Ordinal)), TimeSpan.FromSeconds(30), "a prune", output);

            // A broken edit and SIGHUP: the error is logged and the previous schedule keeps firing.
            await File.WriteAllTextAsync(policyFile, $"name: fast\ndomains: [{vm.Name}]\nschedule: every 7m\nrepository: {repository}\n");
            await Tools.RunAsync("kill", "-HUP", process.Id.ToString(CultureInfo.InvariantCulture));
            await WaitUntilAsync(() => output.Any(l => l.Contains("has errors; its previously loaded policies stay in force", StringComparison.Ordinal)),
                TimeSpan.FromSeconds(30), "the reload report", output);
            Assert.Contains(output, l => l.Contains("fast.yaml:3:11: 'schedule' entry 'every 7m'", StringComparison.Ordinal));
            var before = Backups();
            await WaitUntilAsync(() => Backups() >= before + 2, TimeSpan.FromSeconds(60), "two more backups after the broken reload", output);

            // SIGTERM as soon as a backup starts, to stop the daemon in the middle of a run.
            var started = output.Count(l => l.Contains("policy fast: backing up", StringComparison.Ordinal));
            await WaitUntilAsync(() => output.Count(l => l.Contains("policy fast: backing up", StringComparison.Ordinal)) > started, TimeSpan.FromSeconds(30), "the next backup to start", output);

            await Tools.RunAsync("kill", "-TERM", process.Id.ToString(CultureInfo.InvariantCulture));
            Assert.Equal("STOPPING=1", await notify.ReceiveAsync(TimeSpan.FromSeconds(60)));
            // STATUS datagrams queued before STOPPING were collected while waiting for it.
            Assert.Contains(notify.Statuses, s => s.StartsWith("STATUS=1 policies scheduled", StringComparison.Ordinal));
            using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(120));
            await process.WaitForExitAsync(timeout.Token);
            Assert.Equal(0, process.ExitCode);
            // Retention keep-last 2 runs after every committed point. Where the stop lands in the last run decides
            // the count: copy cancelled (no point: 2), point committed but the stop skips the prune (3), or the run
            // (prune included) done before the stop (2). Whichever it was, the repository holds exactly the points
            // made minus the points pruned, never more than one above keep-last.
            int Pruned() => output.Count(l => l.Contains("policy fast: pruned restore point", StringComparison.Ordinal));
            var expected = Backups() - Pruned();
            Assert.InRange(expected, 2, 3);
            Assert.Equal(expected, PointCount(repository));
            await using var catalog = new CatalogStore(database.ConnectionString);
            var recorded = await catalog.ListPointsAsync(Guid.Parse(vm.Uuid), null, default);
            Assert.Equal(expected, recorded.Count);
            using (var repo = BackupRepository.Open(repository))
                Assert.Equal(repo.ListPoints().Select(p => p.PointId).Order(), recorded.Select(p => p.Id).Order());
            Assert.NotEmpty(await catalog.ListEventsAsync("retention", null, 100, default));
            var verified = await catalog.ListEventsAsync("verify", null, 100, default);
            Assert.NotEmpty(verified);
            Assert.All(verified, e => Assert.True(e.Ok, e.Detail));

            Assert.Equal("running", await vm.StateAsync());
            Assert.Equal(vm.Disk("vda").Path, await vm.ActiveSourceAsync("vda"));
            Assert.DoesNotContain(Directory.EnumerateFiles(vm.Directory), OverlayNaming.IsOverlay);
        }
        finally
        {
            if (!process.HasExited) process.Kill(entireProcessTree: true);
        }
    }

    [Fact]
    public async Task A_fire_missed_while_the_daemon_was_stopped_runs_once_at_start_up()
    {
        await using var vm = await TestVm.CreateAsync(new DiskSpec("vda"));
        await vm.StartAsync();
        using var config = new TempConfig(database.ConnectionString);
        var repository = Path.Combine(config.Directory, "repo");
        // Fires at :00 and :30 of every minute, so a 40 s outage always misses at least one.
        await File.WriteAllTextAsync(Path.Combine(config.PoliciesDirectory, "half.yaml"),
            $"name: half\ndomains: [{vm.Name}]\nschedule: '0,30 * * * * ?'\nrepository: {repository}\n");

        async Task<ConcurrentQueue<string>> RunDaemonAsync(Func<ConcurrentQueue<string>, Task> whileRunning)
        {
            using var notify = new NotifySocket();
            using var process = BackupdProcess.StartCollecting(
                new Dictionary<string, string> { ["NOTIFY_SOCKET"] = notify.Path }, out var output, "--config", config.Path, "daemon");
            try
            {
                Assert.Equal("READY=1", await notify.ReceiveAsync(TimeSpan.FromSeconds(60)));
                await whileRunning(output);
                await Tools.RunAsync("kill", "-TERM", process.Id.ToString(CultureInfo.InvariantCulture));
                using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(120));
                await process.WaitForExitAsync(timeout.Token);
                Assert.Equal(0, process.ExitCode);
                return output;
            }
            finally
            {
                if (!process.HasExited) process.Kill(entireProcessTree: true);
            }
        }

        // First run: wait for one scheduled backup, then stop.
        var first = await RunDaemonAsync(output => WaitUntilAsync(
            () => output.Any(l => l.Contains("policy half: restore point", StringComparison.Ordinal)), TimeSpan.FromSeconds(90), "the first scheduled backup", output));
        Assert.DoesNotContain(first, l => l.Contains("catching up", StringComparison.Ordinal)); // no history yet: nothing to catch up

        await Task.Delay(TimeSpan.FromSeconds(40)); // down over at least one fire time

        var second = await RunDaemonAsync(async output =>
        {
            await WaitUntilAsync(() => output.Any(l => l.Contains("policy half: restore point", StringComparison.Ordinal)), TimeSpan.FromSeconds(60), "the catch-up backup", output);
        });
        Assert.Single(second, l => l.Contains("policy half: catching up the fire of", StringComparison.Ordinal));
        // The catch-up ran before any regular fire: the first backup of the second run follows the catch-up line.
        var lines = second.ToList();
        Assert.True(lines.FindIndex(l => l.Contains("catching up", StringComparison.Ordinal)) < lines.FindIndex(l => l.Contains("policy half: restore point", StringComparison.Ordinal)));
        Assert.Equal(vm.Disk("vda").Path, await vm.ActiveSourceAsync("vda"));
    }

    [Fact]
    public async Task With_a_watchdog_interval_the_daemon_pings_WATCHDOG()
    {
        using var config = new TempConfig(database.ConnectionString);
        using var notify = new NotifySocket();
        using var process = Process.Start(BackupdProcess.StartInfo(
            new Dictionary<string, string> { ["NOTIFY_SOCKET"] = notify.Path, ["WATCHDOG_USEC"] = "2000000" }, "--config", config.Path, "daemon"))!;
        try
        {
            var seen = new List<string>();
            var deadline = DateTime.UtcNow.AddSeconds(60);
            while (seen.Count(m => m == "WATCHDOG=1") < 3 || !seen.Contains("READY=1"))
            {
                Assert.True(DateTime.UtcNow < deadline, $"saw only: {string.Join(", ", seen)}");
                seen.Add(await notify.ReceiveAsync(TimeSpan.FromSeconds(30)));
            }
            await Tools.RunAsync("kill", "-TERM", process.Id.ToString(CultureInfo.InvariantCulture));
            using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(60));
            await process.WaitForExitAsync(timeout.Token);
            Assert.Equal(0, process.ExitCode);
        }
        finally
        {
            if (!process.HasExited) process.Kill(entireProcessTree: true);
        }
    }
}
