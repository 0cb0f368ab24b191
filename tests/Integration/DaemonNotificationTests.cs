using System.Collections.Concurrent;
using System.Diagnostics;
using System.Globalization;
using System.Text.Json;
using Backupd.Daemon.Workflow;
using Backupd.Integration.Fixtures;
using Backupd.Storage.Catalog;
using static Backupd.Integration.Fixtures.Eventually;

namespace Backupd.Integration;

/// <summary>
/// The daemon's own notifications, end to end (real daemon process, real VM, real catalog, a local webhook receiver):
/// a domain whose backups stopped is reported stale once its last success is older than 1.5x the policy's interval
/// (the daemon's `stale-check` shortened to 1 s; elapsed time only, never the time of day), and a merge-back that
/// fails every attempt (BACKUPD_FAULT at the commit) is reported as needing the operator.
/// </summary>
[Trait("Category", "Integration")]
public sealed class DaemonNotificationTests(PostgresDatabase database) : IClassFixture<PostgresDatabase>
{
    private static IEnumerable<WebhookReceiver.Received> Events(WebhookReceiver receiver, string name) =>
        receiver.Requests.Where(r => r.Headers.TryGetValue("X-Backupd-Event", out var e) && e == name);

    [Fact]
    public async Task A_domain_whose_backups_stopped_is_notified_stale_once_and_not_while_its_backups_succeed()
    {
        await using var vm = await TestVm.CreateAsync(new DiskSpec("vda", SizeBytes: 8 * TestVm.MiB));
        using var receiver = new WebhookReceiver();
        using var config = new TempConfig(database.ConnectionString,
            $"stale-check: 1s\nnotify:\n  hook:\n    webhook: {receiver.Url}\n    events: [stale]\n");
        var repository = Path.Combine(config.Directory, "repo");
        var policyFile = Path.Combine(config.PoliciesDirectory, "stale.yaml");
        // Every 20 s: stale after 30 s without a success; successive successes are about 20 s apart.
        await File.WriteAllTextAsync(policyFile, $"name: stale-watch\ndomains: [{vm.Name}]\nschedule: every 20s\nrepository: {repository}\n");

        await using var daemon = Daemon.Start(config, null);
        await using (var catalog = new CatalogStore(database.ConnectionString))
        {
            await WaitUntilAsync(() => Succeeded(catalog, vm) >= 2, TimeSpan.FromSeconds(150), "two scheduled backups", daemon.Output);
        }
        // The check ran about every second meanwhile: a domain backed up on schedule is never stale.
        Assert.Empty(Events(receiver, "stale"));

        // The VM drops out of the policy (renamed, a typo in domains:): no run fails, backups just stop.
        await File.WriteAllTextAsync(policyFile, $"name: stale-watch\ndomains: [{vm.Name}-renamed]\nschedule: every 20s\nrepository: {repository}\n");
        await daemon.ReloadAsync();
        var stopped = DateTime.UtcNow;
        await WaitUntilAsync(() => Events(receiver, "stale").Any(), TimeSpan.FromSeconds(120), "the stale notification", daemon.Output);
        var told = DateTime.UtcNow;
        // The last success was at most a poll before `stopped`: 1.5 x 20 s = 30 s must pass before it is stale (20 s leaves room for clock steps).
        Assert.True(told - stopped >= TimeSpan.FromSeconds(20), $"stale told {told - stopped} after the backups stopped: too early for 1.5 x 20 s");
        var body = JsonDocument.Parse(Events(receiver, "stale").First().Body).RootElement;
        Assert.Equal("stale", body.GetProperty("event").GetString());
        Assert.Equal(vm.Name, body.GetProperty("domain").GetString());
        Assert.Equal("stale-watch", body.GetProperty("policy").GetString());
        Assert.Contains("no successful backup for", body.GetProperty("subject").GetString(), StringComparison.Ordinal);
        Assert.Contains("policy stale-watch fires every", body.GetProperty("text").GetString(), StringComparison.Ordinal);

        // One episode, one message: several more checks send nothing new.
        await Task.Delay(TimeSpan.FromSeconds(5));
        Assert.Single(Events(receiver, "stale"));
        await daemon.StopAsync();
    }

    [Fact]
    public async Task A_merge_back_that_fails_every_attempt_is_notified_as_needing_the_operator()
    {
        await using var vm = await TestVm.CreateAsync(new DiskSpec("vda", SizeBytes: 8 * TestVm.MiB));
        await vm.StartAsync();
        using var receiver = new WebhookReceiver();
        using var config = new TempConfig(database.ConnectionString,
            $"notify:\n  hook:\n    webhook: {receiver.Url}\n    events: [merge-back]\n");
        var repository = Path.Combine(config.Directory, "repo");
        await File.WriteAllTextAsync(Path.Combine(config.PoliciesDirectory, "merge.yaml"),
            $"name: merge-watch\ndomains: [{vm.Name}]\nschedule: every 5s\nrepository: {repository}\n");

        // Every commit attempt throws where the active commit has started: the VM stays on its overlay.
        await using (var daemon = Daemon.Start(config, new Dictionary<string, string> { [Faults.EnvironmentVariable] = $"{Faults.MidCommit}:throw" }))
        {
            await WaitUntilAsync(() => Events(receiver, "merge-back").Any(), TimeSpan.FromSeconds(180), "the merge-back notification", daemon.Output);
            await daemon.StopAsync();
        }
        var body = JsonDocument.Parse(Events(receiver, "merge-back").First().Body).RootElement;
        Assert.Equal(vm.Name, body.GetProperty("domain").GetString());
        Assert.Equal("merge-watch", body.GetProperty("policy").GetString());
        Assert.Equal($"{vm.Name}: overlay not merged back, the operator is needed", body.GetProperty("subject").GetString());
        var text = body.GetProperty("text").GetString()!;
        Assert.Contains($"merge-back failed: vda is still on overlay {Path.GetDirectoryName(vm.Disk("vda").Path)}/", text, StringComparison.Ordinal);
        Assert.Contains("injected fault at mid-commit", text, StringComparison.Ordinal);
        Assert.EndsWith($"run 'backupd recover --domain {vm.Name}'", text, StringComparison.Ordinal);
        // What the message says is true: the VM is on an overlay, and `backupd recover` (what the operator does) fixes it.
        Assert.True(OverlayNaming.IsOverlay(await vm.ActiveSourceAsync("vda")), "the VM should still be on its overlay");
        var recover = await BackupdProcess.RunAsync("--config", config.Path, "recover", "--domain", vm.Name);
        Assert.True(recover.ExitCode == 0, recover.Stdout + recover.Stderr);
        Assert.Equal(vm.Disk("vda").Path, await vm.ActiveSourceAsync("vda"));
    }

    private static int Succeeded(CatalogStore catalog, TestVm vm)
    {
        try
        {
            return catalog.ListRunsAsync(Guid.Parse(vm.Uuid), 20, default).GetAwaiter().GetResult().Count(r => r.State == RunStates.Succeeded);
        }
        catch (Npgsql.NpgsqlException) { return 0; } // not migrated yet: the daemon does it at start
    }

    /// <summary>`backupd daemon` with the test's configuration; SIGHUP reloads, SIGTERM stops (exit 0 asserted), dispose kills.</summary>
    internal sealed class Daemon : IAsyncDisposable
    {
        private readonly Process process;
        public ConcurrentQueue<string> Output { get; }

        private Daemon(Process process, ConcurrentQueue<string> output) => (this.process, Output) = (process, output);

        public static Daemon Start(TempConfig config, IDictionary<string, string>? environment)
        {
            var process = BackupdProcess.StartCollecting(environment, out var output, "--config", config.Path, "daemon");
            return new Daemon(process, output);
        }

        public Task ReloadAsync() => Tools.RunAsync("kill", "-HUP", process.Id.ToString(CultureInfo.InvariantCulture));

        public async Task StopAsync()
        {
            if (process.HasExited) Assert.Fail($"the daemon exited early ({process.ExitCode}):\n{string.Join('\n', Output)}");
            await Tools.RunAsync("kill", "-TERM", process.Id.ToString(CultureInfo.InvariantCulture));
            using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(120));
            await process.WaitForExitAsync(timeout.Token);
            Assert.True(process.ExitCode == 0, string.Join('\n', Output.TakeLast(30)));
        }

        public async ValueTask DisposeAsync()
        {
            if (!process.HasExited)
            {
                process.Kill(entireProcessTree: true);
                await process.WaitForExitAsync();
            }
            process.Dispose();
        }
    }
}
