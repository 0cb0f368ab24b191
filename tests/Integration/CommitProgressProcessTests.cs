using System.Text.Json;
using Backupd.Daemon.Workflow;
using Backupd.Integration.Fixtures;
using Backupd.Storage.Catalog;

namespace Backupd.Integration;

/// <summary>
/// Issue 14 item 4: a throttled commit (4 MiB/s, 48 MiB the guest wrote into the overlay) reports the block job's
/// cur/end, so `status --json` and the catalog row show the commit moving instead of "copy 100 %".
/// </summary>
[Trait("Category", "Integration")]
public sealed class CommitProgressProcessTests(PostgresDatabase database) : CatalogProcessTestBase(database)
{
    private const long GuestBytes = 48 * MiB; // three of QEMU's 16 MiB commit buffers: the position moves in steps

    [Fact]
    public async Task A_throttled_commit_shows_increasing_commit_progress_in_status_json_and_the_catalog()
    {
        await using var vm = await SlowCommitRun.CreateVmAsync();
        await using var store = new CatalogStore(Database.ConnectionString);
        using var run = await SlowCommitRun.StartAsync(vm, Config.Path, Repository, store, commitBandwidth: "4MiB/s", guestBytes: GuestBytes);
        var first = await run.WaitForAsync(r => r is { Step: "commit", ProgressTotal: > 0 }, "a commit position in the catalog");

        // Sample `status --json` until the run ends: the commit's bytes are its own (not the copy's 64 MiB) and grow.
        var samples = new List<(long Bytes, long Total)>();
        while (!run.Process.HasExited)
        {
            var status = await Backupd("status", "--json");
            Assert.True(status.ExitCode == 0, status.Stderr);
            foreach (var r in JsonDocument.Parse(status.Stdout).RootElement.GetProperty("running").EnumerateArray())
            {
                if (r.GetProperty("domainName").GetString() != vm.Name || r.GetProperty("step").GetString() != "commit") continue;
                if (r.GetProperty("progressTotal").ValueKind != JsonValueKind.Number) continue;
                samples.Add((r.GetProperty("progressBytes").GetInt64(), r.GetProperty("progressTotal").GetInt64()));
            }
            await Task.Delay(500);
        }

        Assert.True(await run.ExitCodeAsync() == 0, run.AllOutput);
        Assert.True(first.ProgressTotal >= GuestBytes / 2, $"commit total {first.ProgressTotal}: the overlay holds the guest's 48 MiB");
        Assert.True(first.ProgressTotal < 64 * MiB, $"commit total {first.ProgressTotal} looks like the copy's");
        var distinct = samples.Select(s => s.Bytes).Distinct().ToList();
        Assert.True(distinct.Count >= 2, $"status --json showed the commit at {string.Join(", ", samples)}: not moving");
        for (var i = 1; i < samples.Count; i++)
            Assert.True(samples[i].Bytes >= samples[i - 1].Bytes, $"commit progress went backwards: {string.Join(", ", samples)}");
        Assert.All(samples, s => Assert.True(s.Bytes <= s.Total, $"{s.Bytes} of {s.Total}"));
        Assert.Equal(vm.Disk("vda").Path, await vm.ActiveSourceAsync("vda"));
        Assert.DoesNotContain(Directory.EnumerateFiles(vm.Directory), OverlayNaming.IsOverlay);
    }
}
