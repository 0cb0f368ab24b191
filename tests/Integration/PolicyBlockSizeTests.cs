using System.Globalization;
using Backupd.Integration.Fixtures;
using Backupd.Storage.Repository;
using static Backupd.Integration.Fixtures.Eventually;

namespace Backupd.Integration;

/// <summary>A policy's block-size reaches the repository: `backupd daemon` runs the policy, the manifest records the size.</summary>
[Trait("Category", "Integration")]
public sealed class PolicyBlockSizeTests(PostgresDatabase database) : IClassFixture<PostgresDatabase>
{
    [Fact]
    public async Task A_policy_with_block_size_1MiB_stores_its_first_backup_in_1MiB_blocks()
    {
        // Shut off: copied as it rests, the quickest real run through the scheduler, runner and repository.
        await using var vm = await TestVm.CreateAsync(new DiskSpec("vda"));
        using var config = new TempConfig(database.ConnectionString);
        var repository = Path.Combine(config.Directory, "repo");
        await File.WriteAllTextAsync(Path.Combine(config.PoliciesDirectory, "big.yaml"),
            $"name: big\ndomains: [{vm.Name}]\nschedule: every 5s\nrepository: {repository}\nblock-size: 1MiB\n");

        using var process = BackupdProcess.StartCollecting(null, out var output, "--config", config.Path, "daemon");
        try
        {
            await WaitUntilAsync(() => output.Any(l => l.Contains("policy big: restore point", StringComparison.Ordinal)), TimeSpan.FromSeconds(120), "a scheduled backup", output);
            await Tools.RunAsync("kill", "-TERM", process.Id.ToString(CultureInfo.InvariantCulture));
            using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(120));
            await process.WaitForExitAsync(timeout.Token);
        }
        finally
        {
            if (!process.HasExited) process.Kill(entireProcessTree: true);
        }

        using var repo = BackupRepository.Open(repository);
        var first = repo.ListPoints()[^1];
        Assert.NotEmpty(first.Files);
        Assert.All(first.Files, f => Assert.Equal(1 << 20, f.BlockSize));
        // The manifest as written on disk (points/POINT.json), not just the record the library reads back.
        var manifest = Directory.EnumerateFiles(repository, $"{first.PointId}.json", SearchOption.AllDirectories).Single();
        using var document = System.Text.Json.JsonDocument.Parse(File.ReadAllText(manifest));
        Assert.All(document.RootElement.GetProperty("files").EnumerateArray(), f => Assert.Equal(1048576, f.GetProperty("blockSize").GetInt32()));
    }
}
