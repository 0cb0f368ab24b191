using System.Collections.Concurrent;
using System.Diagnostics;
using Backupd.Integration.Fixtures;
using Backupd.Storage.Catalog;
using Backupd.Storage.Repository;

namespace Backupd.Integration.Catalog;

/// <summary>
/// `backupd daemon` with a policy firing every few seconds: scheduled runs go through the catalog
/// (runs, points, verify events), and keep-last retention removes old points from the repository
/// and the catalog alike, recording each removal.
/// </summary>
[Trait("Category", "Integration")]
public sealed class ScheduledCatalogTests(PostgresDatabase database) : IClassFixture<PostgresDatabase>
{
    [Fact]
    public async Task Scheduled_runs_are_recorded_verified_and_pruned_to_keep_last_in_repository_and_catalog()
    {
        await using var vm = await TestVm.CreateAsync(new DiskSpec("vda"));
        await vm.StartAsync();
        using var config = new TempConfig(database.ConnectionString);
        var repository = Path.Combine(config.Directory, "repo");
        await File.WriteAllTextAsync(Path.Combine(config.PoliciesDirectory, "fast.yaml"),
            $"name: fast\ndomains: [{vm.Name}]\nschedule: every 5s\nrepository: {repository}\nretention:\n  keep-last: 2\nverify:\n  after-backup: true\n");
        var uuid = Guid.Parse(vm.Uuid);
        await CatalogMigrator.MigrateAsync(database.ConnectionString, CancellationToken.None); // the daemon does too; the test reads before it may have
        using var daemon = BackupdProcess.StartCollecting(null, out var output, "--config", config.Path, "daemon");
        await using var store = new CatalogStore(database.ConnectionString);
        try
        {
            // A run is marked succeeded before its verify and its prune: wait for all three of the fourth run, not just
            // the run row, or the stop can land between them.
            var deadline = DateTime.UtcNow.AddSeconds(180);
            while (true)
            {
                var runs = await CountSucceededAsync(store, uuid);
                var verifiedOk = (await store.ListEventsAsync(EventKinds.Verify, null, 50, CancellationToken.None)).Count(e => e.DomainUuid == uuid && e.Ok);
                var pruned = (await store.ListEventsAsync(EventKinds.Retention, null, 50, CancellationToken.None)).Count(e => e.DomainUuid == uuid);
                if (runs >= 4 && verifiedOk >= 4 && pruned >= 2) break;
                if (DateTime.UtcNow > deadline)
                    throw new TimeoutException($"in 180 s: {runs} scheduled runs succeeded, {verifiedOk} verified, {pruned} pruned; daemon output:\n{string.Join('\n', output.TakeLast(40))}");
                await Task.Delay(250);
            }
            // A clean stop (SIGTERM), not a kill: a kill between the repository and the catalog would leave them
            // legitimately out of step, which is `catalog rebuild`'s business, not this test's.
            await Tools.RunAsync("kill", "-TERM", daemon.Id.ToString(System.Globalization.CultureInfo.InvariantCulture));
            using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(120));
            await daemon.WaitForExitAsync(timeout.Token);
            Assert.Equal(0, daemon.ExitCode);
        }
        finally
        {
            if (!daemon.HasExited)
            {
                daemon.Kill(entireProcessTree: true);
                await daemon.WaitForExitAsync();
            }
        }

        var points = await store.ListPointsAsync(uuid, null, CancellationToken.None);
        using var repo = BackupRepository.Open(repository);
        var inRepository = repo.ListPoints(vm.Uuid).Select(p => p.PointId).ToList();
        // The stop may catch one more run after the 4th: its point kept without its prune (3), or none (2).
        Assert.InRange(points.Count, 2, 3);
        Assert.Equal(inRepository.Order(), points.Select(p => p.Id).Order());
        var runsRows = await store.ListRunsAsync(uuid, 50, CancellationToken.None);
        Assert.All(runsRows.Where(r => r.State == RunStates.Succeeded), r => Assert.Equal(("fast", "schedule"), (r.PolicyName, r.Trigger)));
        var retention = await store.ListEventsAsync(EventKinds.Retention, null, 50, CancellationToken.None);
        Assert.True(retention.Count(e => e.DomainUuid == uuid) >= 2, "every run after the second removed one point");
        Assert.All(retention.Where(e => e.DomainUuid == uuid), e => Assert.DoesNotContain(e.PointId, inRepository));
        var verified = await store.ListEventsAsync(EventKinds.Verify, null, 50, CancellationToken.None);
        Assert.True(verified.Count(e => e.DomainUuid == uuid && e.Ok) >= 4);
    }

    private static async Task<int> CountSucceededAsync(CatalogStore store, Guid uuid) =>
        (await store.ListRunsAsync(uuid, 50, CancellationToken.None)).Count(r => r.State == RunStates.Succeeded);
}
