using System.Text.Json;
using Backupd.Integration.Fixtures;
using Backupd.Storage.Catalog;
using Backupd.Storage.Repository;

namespace Backupd.Integration.Catalog;

/// <summary>
/// Issue 16 (1): `backupd forget` of a point whose document names a path (a file key "/abs/victimdir" or
/// "../…/victimdir2", a group id "../…") deleted or created directories outside the repository. Forged with a
/// valid MAC (someone who can read the key): the names are refused on their own, exit 5, nothing touched.
/// </summary>
[Trait("Category", "Integration")]
public sealed class HostileForgetTests(PostgresDatabase database) : CatalogProcessTestBase(database)
{
    [Fact]
    public async Task Forgetting_a_point_whose_names_are_paths_changes_nothing_inside_or_outside()
    {
        await using var vm = await TestVm.CreateAsync(new DiskSpec("vda"));
        await vm.StartAsync();
        var run = await Backupd("backup", "--domain", vm.Name, "--to", Repository, "--json");
        Assert.True(run.ExitCode == 0, run.Stderr);
        var point = JsonDocument.Parse(run.Stdout).RootElement.GetProperty("restorePointId").GetString()!;
        var outside = Config.Directory; // the repository is Config.Directory/repo
        foreach (var victim in new[] { "victimdir", "victimdir2" })
        {
            Directory.CreateDirectory(Path.Combine(outside, victim));
            File.WriteAllText(Path.Combine(outside, victim, "keep"), victim);
        }
        var document = Path.Combine(Repository, "groups", vm.Uuid, "points", point + ".json");
        var original = File.ReadAllBytes(document);

        var forgeries = new (string What, Func<PointDocument, PointDocument> Edit)[]
        {
            ("files[0].fileKey", d => d with { Files = [.. d.Files.Select(f => f with { FileKey = Path.Combine(outside, "victimdir") })] }),
            ("files[0].fileKey", d => d with { Files = [.. d.Files.Select(f => f with { FileKey = "../../../../victimdir2" })] }),
            ("'groupId'", d => d with { GroupId = "../../g" }),
        };
        foreach (var (what, edit) in forgeries)
        {
            using (var repo = BackupRepository.Open(Repository))
            {
                repo.Documents.Write(document, edit(repo.ReadPoint(vm.Uuid, point)));
            }

            var forget = await Backupd("forget", point, "--json");

            Assert.True(forget.ExitCode == 5, $"forget exited {forget.ExitCode}: {forget.Stderr}");
            Assert.Contains(what, JsonDocument.Parse(forget.Stdout).RootElement.GetProperty("error").GetString(), StringComparison.Ordinal);
            Assert.Equal("victimdir", File.ReadAllText(Path.Combine(outside, "victimdir", "keep")));
            Assert.Equal("victimdir2", File.ReadAllText(Path.Combine(outside, "victimdir2", "keep")));
            Assert.False(Directory.Exists(Path.Combine(outside, "g")), "no group directory outside the repository");
            File.WriteAllBytes(document, original);
        }

        // Nothing was changed: with the document as backupd wrote it, the point is still whole and forget works.
        await using var store = new CatalogStore(Database.ConnectionString);
        Assert.Single(await store.ListPointsAsync(Guid.Parse(vm.Uuid), null, CancellationToken.None));
        Assert.Equal(0, (await Backupd("verify", "--domain", vm.Name)).ExitCode);
        var again = await Backupd("forget", point);
        Assert.True(again.ExitCode == 0, again.Stderr);
    }
}
