using System.Text.Json;
using Backupd.Integration.Fixtures;
using Backupd.Storage.Repository;

namespace Backupd.Integration.Catalog;

/// <summary>
/// `backupd backup --domain` heals a flipped byte in the mirror of a real VM's disk (issue 16, item 7) and says so in
/// its JSON result and its log, and the point that had inherited the damage restores again.
/// </summary>
[Trait("Category", "Integration")]
public sealed class MirrorScrubProcessTests(PostgresDatabase database) : CatalogProcessTestBase(database)
{
    [Fact]
    public async Task A_flipped_mirror_byte_is_healed_by_the_next_domain_backup_and_reported()
    {
        await using var vm = await TestVm.CreateAsync(new DiskSpec("vda"));
        await vm.StartAsync();
        await vm.WriteAsGuestAsync("vda", 2 * MiB, 0x3c, MiB);
        var first = await Backupd("backup", "--domain", vm.Name, "--to", Repository, "--json");
        Assert.True(first.ExitCode == 0, $"the first backup exited {first.ExitCode}: {first.Stderr}");
        var firstPoint = JsonDocument.Parse(first.Stdout).RootElement.GetProperty("restorePointId").GetString()!;

        // Rot in the mirror: flip a byte inside the guest's data, which the next backup finds unchanged.
        var mirror = Path.Combine(Repository, "groups", vm.Uuid, "files", "vda.0", "mirror");
        var bytes = await File.ReadAllBytesAsync(mirror);
        var at = Array.LastIndexOf(bytes, (byte)0x3c);
        Assert.True(at > 0, "the guest's pattern is not in the mirror");
        await using (var fs = new FileStream(mirror, FileMode.Open, FileAccess.Write))
        {
            fs.Position = at;
            fs.WriteByte(0x3d);
        }

        // --full: with changed-block tracking an incremental read skips the blocks the bitmap calls clean, and the scrub checks only
        // blocks it read (docs/repository-format.md); the safety-net read (every full-every-th backup, or --full) reads them all.
        var second = await Backupd("backup", "--domain", vm.Name, "--to", Repository, "--scrub-cycle", "1", "--full", "--json");

        Assert.True(second.ExitCode == 0, $"exited {second.ExitCode}: {second.Stderr}");
        var file = JsonDocument.Parse(second.Stdout).RootElement.GetProperty("disks")[0].GetProperty("files")[0];
        Assert.Equal(1, file.GetProperty("healedBlocks").GetInt32());
        Assert.Contains($"restore point {firstPoint} could not be restored at those blocks", file.GetProperty("healing").GetString());
        Assert.Contains("healed 1 damaged mirror block(s) of 'vda.0'", second.Stderr, StringComparison.Ordinal); // the log's warning
        using var repo = BackupRepository.Open(Repository);
        foreach (var point in repo.ListPoints(vm.Uuid))
        {
            // The digest check inside the restore fails on any wrong byte.
            await repo.RestoreFileAsync(point.PointId, "vda.0", Path.Combine(Config.Directory, $"r-{point.PointId}"), null, CancellationToken.None);
        }
        Assert.True((await repo.VerifyAsync(vm.Uuid, null, null, CancellationToken.None)).Ok);
    }
}
