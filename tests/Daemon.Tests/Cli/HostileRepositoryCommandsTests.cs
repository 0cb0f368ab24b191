using System.Text.Json;
using System.Text.Json.Nodes;
using Backupd.Storage.Repository;

namespace Backupd.Daemon.Tests.Cli;

/// <summary>Issue 16 through the real binary: a hostile repository gets exit 5 (damage) and nothing outside it is touched.</summary>
public sealed partial class RepositoryCommandsTests
{
    private string Points => Path.Combine(P("repo"), "groups", "files", "points");

    /// <summary>A directory beside the repository with a file in it, and a check that it stayed as it was.</summary>
    private (string Dir, Action AssertUntouched) Outside()
    {
        var dir = P("outside");
        Directory.CreateDirectory(Path.Combine(dir, "secret"));
        File.WriteAllText(Path.Combine(dir, "secret", "mirror"), "secret");
        string State() => string.Join("\n", Directory.GetFileSystemEntries(dir, "*", SearchOption.AllDirectories).Order(StringComparer.Ordinal)
            .Select(e => File.Exists(e) ? $"{e} {Convert.ToHexString(System.Security.Cryptography.SHA256.HashData(File.ReadAllBytes(e)))}" : e));
        var before = State();
        return (dir, () => Assert.Equal(before, State()));
    }

    [Fact]
    public void A_mirror_linked_outside_fails_verify_and_backup_with_exit_5_and_the_target_is_untouched()
    {
        var img = MakeImage("m.img", 21, 2);
        Assert.Equal(0, Run(null, "backup", "--file", img, "--to", P("repo")).Code);
        var mirror = Path.Combine(P("repo"), "groups", "files", "files", "m.img", "mirror");
        Directory.CreateDirectory(P("outside"));
        var victim = Path.Combine(P("outside"), "victim.img");
        File.Move(mirror, victim);
        File.CreateSymbolicLink(mirror, victim);
        var (_, untouched) = Outside();

        var verify = Run(null, "verify", "--repository", P("repo"), "--json");
        Assert.Equal(5, verify.Code);
        var report = JsonDocument.Parse(verify.Out).RootElement;
        Assert.False(report.GetProperty("ok").GetBoolean());
        Assert.Contains("symbolic link", report.GetProperty("problems")[0].GetString(), StringComparison.Ordinal);
        Scribble(img, 22, 4);
        var backup = Run(null, "backup", "--file", img, "--to", P("repo"));
        Assert.Equal(5, backup.Code);
        Assert.Contains(mirror, backup.Err, StringComparison.Ordinal);
        untouched();
    }

    [Theory]
    [InlineData("sourcePath", "/outside/evil.img")]
    [InlineData("format", "qcow2")]
    public void An_edited_point_document_fails_verify_and_restore_with_exit_5(string field, string value)
    {
        var img = MakeImage("e.img", 23, 2);
        Assert.Equal(0, Run(null, "backup", "--file", img, "--to", P("repo")).Code);
        var doc = Directory.GetFiles(Points, "*.json").Single();
        var node = JsonNode.Parse(File.ReadAllText(doc))!;
        node["files"]![0]![field] = value;
        File.WriteAllText(doc, node.ToJsonString());

        var verify = Run(null, "verify", "--repository", P("repo"), "--json");
        Assert.Equal(5, verify.Code);
        Assert.Contains("MAC does not match", JsonDocument.Parse(verify.Out).RootElement.GetProperty("problems")[0].GetString(), StringComparison.Ordinal);
        var restore = Run(null, "restore", "--repository", P("repo"), "--file", "e.img", "--to", P("r.img"));
        Assert.Equal(5, restore.Code);
        Assert.Contains("MAC does not match", restore.Err, StringComparison.Ordinal);
        Assert.False(File.Exists(P("r.img")));
    }

    [Fact]
    public void A_file_key_that_is_a_path_fails_restore_and_verify_with_exit_5_and_nothing_outside_is_read()
    {
        var img = MakeImage("k.img", 24, 2);
        Assert.Equal(0, Run(null, "backup", "--file", img, "--to", P("repo")).Code);
        var (_, untouched) = Outside();
        const string key = "../../../../outside/secret";
        using (var repo = BackupRepository.Open(P("repo")))
        {
            // Forged with a valid MAC, as someone who can read the repository key could.
            var point = repo.ListPoints().Single();
            var doc = repo.ReadPoint("files", point.PointId);
            repo.Documents.Write(Path.Combine(Points, point.PointId + ".json"), doc with { Files = [doc.Files[0] with { FileKey = key }] });
        }

        var restore = Run(null, "restore", "--repository", P("repo"), "--file", key, "--to", P("r.img"));
        Assert.Equal(5, restore.Code);
        Assert.Contains("files[0].fileKey", restore.Err, StringComparison.Ordinal);
        Assert.False(File.Exists(P("r.img")));
        var verify = Run(null, "verify", "--repository", P("repo"));
        Assert.Equal(5, verify.Code);
        Assert.Contains("files[0].fileKey", verify.Out, StringComparison.Ordinal);
        untouched();
    }
}
