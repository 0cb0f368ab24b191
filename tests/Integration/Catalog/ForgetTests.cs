using System.Text.Json;
using Backupd.Integration.Fixtures;
using Backupd.Storage.Catalog;
using Backupd.Storage.Repository;

namespace Backupd.Integration.Catalog;

/// <summary>`backupd forget POINT` against a real VM's points: any point goes, the newest too, from repository and catalog alike.</summary>
[Trait("Category", "Integration")]
public sealed class ForgetTests(PostgresDatabase database) : CatalogProcessTestBase(database)
{
    [Fact]
    public async Task Forgetting_the_newest_point_leaves_the_previous_one_restorable_and_the_next_backup_builds_on_it()
    {
        await using var vm = await TestVm.CreateAsync(new DiskSpec("vda"));
        await vm.StartAsync();
        var points = new List<string>();
        for (var k = 1; k <= 3; k++)
        {
            await vm.WriteAsGuestAsync("vda", k * MiB, (byte)(0x40 + k), MiB);
            var run = await Backupd("backup", "--domain", vm.Name, "--to", Repository, "--json");
            Assert.True(run.ExitCode == 0, $"backup {k} exited {run.ExitCode}: {run.Stderr}");
            points.Add(JsonDocument.Parse(run.Stdout).RootElement.GetProperty("restorePointId").GetString()!);
        }

        var forget = await Backupd("forget", points[2], "--json");

        Assert.True(forget.ExitCode == 0, forget.Stderr);
        Assert.True(JsonDocument.Parse(forget.Stdout).RootElement.GetProperty("removed").GetBoolean());
        var uuid = Guid.Parse(vm.Uuid);
        await using var store = new CatalogStore(Database.ConnectionString);
        Assert.Equal(points[..2].Order(), (await store.ListPointsAsync(uuid, null, CancellationToken.None)).Select(p => p.Id).Order());
        using (var repo = BackupRepository.Open(Repository))
            Assert.Equal(points[..2].Order(), repo.ListPoints(vm.Uuid).Select(p => p.PointId).Order());
        var events = await store.ListEventsAsync(EventKinds.Retention, null, 10, CancellationToken.None);
        Assert.Contains(events, e => e.PointId == points[2] && e.Detail.Contains("backupd forget", StringComparison.Ordinal));
        var verify = await Backupd("verify", "--domain", vm.Name, "--json");
        Assert.True(verify.ExitCode == 0, verify.Stdout + verify.Stderr);

        // The second point is now the newest: its files are the repository's mirrors, and they restore exactly.
        var restored = Path.Combine(Config.Directory, "restored");
        var restore = await Backupd("restore", "--domain", vm.Name, "--to", restored, "--json");
        Assert.True(restore.ExitCode == 0, restore.Stderr);
        Assert.Equal(points[1], JsonDocument.Parse(restore.Stdout).RootElement.GetProperty("pointId").GetString());
        var image = Directory.GetFiles(restored, "vda*.qcow2").Single();
        Assert.True(await TestVm.ImageMatchesAsync(image, "qcow2", 2 * MiB, MiB, 0x42));
        Assert.False(await TestVm.ImageMatchesAsync(image, "qcow2", 3 * MiB, MiB, 0x43));

        var again = await Backupd("backup", "--domain", vm.Name, "--to", Repository, "--json");
        Assert.True(again.ExitCode == 0, again.Stderr);
        Assert.True((await Backupd("verify", "--domain", vm.Name)).ExitCode == 0);
    }

    [Fact]
    public async Task Unknown_points_and_busy_domains_change_nothing()
    {
        var unknown = await Backupd("forget", "20200101T000000Z-deadbeef");
        Assert.Equal(3, unknown.ExitCode);
        Assert.Contains("no restore point", unknown.Stderr, StringComparison.Ordinal);

        await using var vm = await TestVm.CreateAsync(new DiskSpec("vda"));
        await vm.StartAsync();
        var run = await Backupd("backup", "--domain", vm.Name, "--to", Repository, "--json");
        Assert.True(run.ExitCode == 0, run.Stderr);
        var point = JsonDocument.Parse(run.Stdout).RootElement.GetProperty("restorePointId").GetString()!;
        var uuid = Guid.Parse(vm.Uuid);
        await using (await CatalogDomainLock.AcquireAsync(Database.ConnectionString, uuid, vm.Name, ProcessIdentity.Current, CancellationToken.None))
        {
            var busy = await Backupd("forget", point);
            Assert.Equal(4, busy.ExitCode);
        }
        await using var store = new CatalogStore(Database.ConnectionString);
        Assert.Single(await store.ListPointsAsync(uuid, null, CancellationToken.None));
        using (var repo = BackupRepository.Open(Repository))
            Assert.Single(repo.ListPoints(vm.Uuid));

        // A repository that is gone is reported, not created anew.
        Directory.Move(Repository, Repository + ".moved");
        var gone = await Backupd("forget", point);
        Assert.Equal(3, gone.ExitCode);
        Assert.Contains("no repository there", gone.Stderr, StringComparison.Ordinal);
        Assert.False(Directory.Exists(Repository));
        Assert.Single(await store.ListPointsAsync(uuid, null, CancellationToken.None));
    }
}
