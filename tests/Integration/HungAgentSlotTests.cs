using System.Globalization;
using Backupd.Daemon.Workflow;
using Backupd.Integration.Fixtures;
using static Backupd.Integration.Fixtures.Eventually;

namespace Backupd.Integration;

/// <summary>
/// Issue 11 item 1, the scheduler's part: a scheduled run whose guest agent hangs (qemu-ga SIGSTOPped in a real guest,
/// its channel still `connected`) must not hold a `max-parallel` slot while the agent hangs. The daemon runs with
/// max-parallel 1 and two policies firing every 5 s: one for the hung guest (quiesce required), one for a plain VM.
/// The hung run gives up after the bounded guest-ping and releases the only slot, so the VM's backup completes while
/// the agent is still stopped (before the fix libvirt waited for the agent for many minutes, slot held).
/// Then SIGTERM stops this two-policy daemon within a bound, with no run started after it and both guests on their bases.
/// </summary>
[Trait("Category", "Integration")]
public sealed class HungAgentSlotTests(PostgresDatabase database) : IClassFixture<PostgresDatabase>
{
    [Fact]
    public async Task With_max_parallel_1_a_hung_agents_run_releases_the_slot_and_the_other_domains_backup_completes_meanwhile()
    {
        await using var guest = await TestGuest.BootAsync();
        await using var vm = await TestVm.CreateAsync(new DiskSpec("vda"));
        await vm.StartAsync();
        using var config = new TempConfig(database.ConnectionString, "max-parallel: 1\nagent-timeout: 5s");
        await File.WriteAllTextAsync(Path.Combine(config.PoliciesDirectory, "hung.yaml"),
            $"name: hung\ndomains: [{guest.Name}]\nschedule: every 5s\nrepository: {Path.Combine(config.Directory, "repo-hung")}\nquiesce: required\n");
        await File.WriteAllTextAsync(Path.Combine(config.PoliciesDirectory, "plain.yaml"),
            $"name: plain\ndomains: [{vm.Name}]\nschedule: every 5s\nrepository: {Path.Combine(config.Directory, "repo-plain")}\nquiesce: off\n");

        await guest.ControlAsync("agent-stop"); // hung from before the first fire to the end of the test
        using var notify = new NotifySocket();
        System.Diagnostics.Process? process = null;
        var woken = false;
        try
        {
            Assert.Contains("state='connected'", await Tools.Virsh("dumpxml", guest.Name), StringComparison.Ordinal);
            process = BackupdProcess.StartCollecting(new Dictionary<string, string> { ["NOTIFY_SOCKET"] = notify.Path }, out var output, "--config", config.Path, "daemon");
            Assert.Equal("READY=1", await notify.ReceiveAsync(TimeSpan.FromSeconds(60)));

            // "backing up" is logged once a run has its slots: with max-parallel 1 the log orders the slot's holders.
            var hungStart = $"policy hung: backing up {guest.Name}";
            var hungFailed = $"policy hung: {guest.Name} failed:";
            var plainStart = $"policy plain: backing up {vm.Name}";
            var plainDone = $"policy plain: {vm.Name} done";
            int IndexOf(string text, int after = -1)
            {
                var lines = output.ToArray();
                for (var i = after + 1; i < lines.Length; i++) if (lines[i].Contains(text, StringComparison.Ordinal)) return i;
                return -1;
            }
            await WaitUntilAsync(() => IndexOf(hungStart) >= 0, TimeSpan.FromSeconds(90), "the hung guest's run to take the slot", output);
            var held = IndexOf(hungStart);
            // The plain VM's first run after the hung one took the only slot: it can only start once the hung run let go.
            await WaitUntilAsync(() => IndexOf(plainStart, held) is var s && s >= 0 && IndexOf(plainDone, s) >= 0, TimeSpan.FromSeconds(120),
                "the plain VM's backup to complete after the hung run took the slot", output);
            // The hung run ended on its bounded guest-ping (its failure is logged after the slot is released, so the
            // line may come just after the other run's start).
            var released = IndexOf(hungFailed, held);
            Assert.True(released >= 0, $"the hung run must have ended, failed on the guest-ping:\n{string.Join('\n', output)}");
            Assert.Contains("did not answer a guest-ping", output.ToArray()[released], StringComparison.Ordinal);
            // Still hung: the backup completed while the agent was not answering, not after it woke.
            Assert.Null(await guest.AgentAsync("""{"execute":"guest-ping"}""", timeoutSeconds: 2));
            await using (var catalog = new Backupd.Storage.Catalog.CatalogStore(database.ConnectionString))
                Assert.NotEmpty(await catalog.ListPointsAsync(Guid.Parse(vm.Uuid), null, CancellationToken.None));

            // SIGTERM while the hung guest's policy keeps firing (and failing on the guest-ping) and the plain policy's next
            // run waits for the only slot: the daemon must exit within a generous bound (a correctness bound, not a timing),
            // start nothing after the stop, and leave both guests on their base images, thawed; no kill, no `recover`.
            // The stop lands while a hung run waits on its bounded guest-ping (the next fire of the hung policy).
            var lastHung = output.Count(l => l.Contains(hungStart, StringComparison.Ordinal));
            await WaitUntilAsync(() => output.Count(l => l.Contains(hungStart, StringComparison.Ordinal)) > lastHung, TimeSpan.FromSeconds(60),
                "the hung policy's next run to start", output);
            await Task.Delay(TimeSpan.FromSeconds(1)); // connected: preflight, then the bounded guest-ping
            await Tools.RunAsync("kill", "-TERM", process.Id.ToString(CultureInfo.InvariantCulture));
            Assert.Equal("STOPPING=1", await notify.ReceiveAsync(TimeSpan.FromSeconds(60)));
            var stopRequested = DateTime.UtcNow;
            var linesAtStop = output.Count;
            using (var bound = new CancellationTokenSource(TimeSpan.FromSeconds(60)))
            {
                try { await process.WaitForExitAsync(bound.Token); }
                catch (OperationCanceledException)
                {
                    Assert.Fail($"the daemon did not exit within 60 s of SIGTERM:\n{string.Join('\n', output)}");
                }
            }
            Assert.True(process.ExitCode == 0, $"exit code {process.ExitCode}:\n{string.Join('\n', output)}");
            // Nothing started after the stop: no run took a slot (the log), none was recorded (the catalog).
            var afterStop = output.Skip(linesAtStop).ToList();
            Assert.DoesNotContain(afterStop, l => l.Contains(": backing up ", StringComparison.Ordinal));
            await using (var catalog = new Backupd.Storage.Catalog.CatalogStore(database.ConnectionString))
            {
                var guestUuid = Guid.Parse((await Tools.Virsh("domuuid", guest.Name)).Trim());
                foreach (var uuid in new[] { guestUuid, Guid.Parse(vm.Uuid) })
                {
                    var runs = await catalog.ListRunsAsync(uuid, 1000, CancellationToken.None);
                    Assert.DoesNotContain(runs, r => r.StartedAt > stopRequested.AddSeconds(1));
                    Assert.DoesNotContain(runs, r => r.FinishedAt is null); // none left "running"
                }
            }
            await guest.ControlAsync("agent-cont");
            woken = true;
        }
        finally
        {
            if (process is { HasExited: false }) process.Kill(entireProcessTree: true);
            process?.Dispose();
            if (!woken) await guest.ControlAsync("agent-cont");
        }
        // The refused runs snapshotted nothing: the guest is on its disk, not frozen, still writing.
        Assert.Equal("thawed", await guest.FreezeStatusAsync());
        Assert.True(await guest.KeepsWritingAsync(2, TimeSpan.FromSeconds(60)), "the guest's writer stopped");
        Assert.DoesNotContain(Directory.EnumerateFiles(guest.Directory), OverlayNaming.IsOverlay);
        Assert.Equal(vm.Disk("vda").Path, await vm.ActiveSourceAsync("vda"));
        Assert.DoesNotContain(Directory.EnumerateFiles(vm.Directory), OverlayNaming.IsOverlay);
    }
}
