using System.Text.Json.Nodes;
using Backupd.Storage.Repository;

namespace Backupd.Storage.Tests.Repository;

/// <summary>
/// Issue 16: the repository key kept outside the repository (BACKUPD_KEY_DIRECTORY, a temp directory here). One class,
/// so its tests run one after another and the process-wide variable is theirs; no other test has an external key.
/// </summary>
[System.Runtime.Versioning.UnsupportedOSPlatform("windows")]
public sealed class ExternalKeyTests : IDisposable
{
    private static readonly byte[] V0 = TempRepository.Content(31, 6, 3);
    private readonly TempRepository _t = new();
    private readonly string _keys;

    public ExternalKeyTests()
    {
        _keys = _t.Path_("keys");
        Environment.SetEnvironmentVariable(RepositoryKey.DirectoryVariable, _keys);
    }

    public void Dispose()
    {
        Environment.SetEnvironmentVariable(RepositoryKey.DirectoryVariable, null);
        _t.Dispose();
    }

    private string InRepo(string name) => Path.Combine(_t.RepoDir, name);

    [Fact]
    public async Task A_moved_out_key_opens_the_repository_and_the_repository_holds_no_key()
    {
        var p0 = await _t.BackupAsync("g", ("vda.0", V0));
        var before = File.ReadAllBytes(InRepo("key"));
        var path = _t.Repo.MoveKeyOut();

        Assert.False(File.Exists(InRepo("key")));
        Assert.Equal(before, File.ReadAllBytes(path));
        Assert.Equal(_keys, Path.GetDirectoryName(path));
        Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, File.GetUnixFileMode(path));
        var doc = JsonNode.Parse(File.ReadAllText(InRepo("repository.json")))!;
        Assert.Equal("external", (string?)doc["keyFile"]);
        Assert.Equal(Path.GetFileNameWithoutExtension(path), (string?)doc["repositoryId"]);
        _t.Reopen();
        Assert.Equal(V0, await _t.RestoreAsync(p0.PointId, "vda.0"));
        Assert.True((await _t.Repo.VerifyAsync(null, null, null, CancellationToken.None)).Ok);
        Assert.Equal(path, _t.Repo.MoveKeyOut()); // again: nothing to do, nothing broken
    }

    [Fact]
    public async Task A_missing_external_key_is_a_clear_error_naming_its_path()
    {
        await _t.BackupAsync("g", ("vda.0", V0));
        var path = _t.Repo.MoveKeyOut();
        _t.Repo.Dispose();
        File.Delete(path);

        var e = Assert.ThrowsAny<RepositoryException>(() => BackupRepository.Open(_t.RepoDir));
        Assert.Contains(path, e.Message, StringComparison.Ordinal);
        Assert.Contains("restore the key from your copy", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_missing_internal_key_is_a_clear_error_too()
    {
        await _t.BackupAsync("g", ("vda.0", V0));
        _t.Repo.Dispose();
        File.Delete(InRepo("key"));

        var e = Assert.ThrowsAny<RepositoryException>(() => BackupRepository.Open(_t.RepoDir));
        Assert.Contains(InRepo("key"), e.Message, StringComparison.Ordinal);
        Assert.Contains("cannot be authenticated", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_group_readable_external_key_is_refused()
    {
        await _t.BackupAsync("g", ("vda.0", V0));
        var path = _t.Repo.MoveKeyOut();
        _t.Repo.Dispose();
        File.SetUnixFileMode(path, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.GroupRead);

        var e = Assert.ThrowsAny<RepositoryException>(() => BackupRepository.Open(_t.RepoDir));
        Assert.Contains("chmod 600", e.Message, StringComparison.Ordinal);
        File.SetUnixFileMode(path, UnixFileMode.UserRead | UnixFileMode.UserWrite);
        BackupRepository.Open(_t.RepoDir).Dispose();
    }

    [Fact]
    public async Task A_symlinked_external_key_is_refused()
    {
        await _t.BackupAsync("g", ("vda.0", V0));
        var path = _t.Repo.MoveKeyOut();
        _t.Repo.Dispose();
        var elsewhere = _t.Path_("elsewhere.key");
        File.Move(path, elsewhere);
        File.CreateSymbolicLink(path, elsewhere);

        Assert.ThrowsAny<Exception>(() => BackupRepository.Open(_t.RepoDir).Dispose());
    }

    [Fact]
    public async Task A_forged_document_is_detected_with_the_key_out_of_reach()
    {
        var p0 = await _t.BackupAsync("g", ("vda.0", V0));
        _t.Repo.MoveKeyOut();
        _t.Reopen();
        var point = Path.Combine(_t.RepoDir, "groups", "g", "points", p0.PointId + ".json");
        HostileRepository.EditJson(point, o => o["files"]![0]!["sourcePath"] = "/outside/evil.img");

        var report = await _t.Repo.VerifyAsync(null, null, null, CancellationToken.None);
        Assert.False(report.Ok);
        Assert.Contains(report.Problems, p => p.Contains("MAC does not match", StringComparison.Ordinal));
    }

    [Fact]
    public async Task Move_out_is_refused_while_a_writer_holds_a_group()
    {
        await _t.BackupAsync("g", ("vda.0", V0));
        using (var session = _t.Repo.BeginBackup("g", "g"))
        {
            Assert.Throws<RepositoryBusyException>(() => _t.Repo.MoveKeyOut());
        }
        Assert.True(File.Exists(InRepo("key")));
        Assert.Equal("key", (string?)JsonNode.Parse(File.ReadAllText(InRepo("repository.json")))!["keyFile"]);
    }

    [Fact]
    public async Task Switching_repository_json_back_to_a_planted_key_is_refused()
    {
        await _t.BackupAsync("g", ("vda.0", V0));
        _t.Repo.MoveKeyOut();
        _t.Repo.Dispose();
        // An attacker with write access: a key of their own beside the data and repository.json re-MAC'd under it.
        var planted = new byte[32];
        Random.Shared.NextBytes(planted);
        File.WriteAllBytes(InRepo("key"), planted);
        var doc = JsonNode.Parse(File.ReadAllText(InRepo("repository.json")))!.AsObject();
        doc["keyFile"] = "key";
        File.WriteAllText(InRepo("repository.json"), doc.ToJsonString());

        var e = Assert.Throws<RepositoryCorruptException>(() => BackupRepository.Open(_t.RepoDir));
        Assert.Contains("differs", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_move_out_interrupted_before_repository_json_switched_still_opens()
    {
        await _t.BackupAsync("g", ("vda.0", V0));
        var id = (string)JsonNode.Parse(File.ReadAllText(InRepo("repository.json")))!["repositoryId"]!;
        Directory.CreateDirectory(_keys);
        File.Copy(InRepo("key"), Path.Combine(_keys, id + ".key"));
        File.SetUnixFileMode(Path.Combine(_keys, id + ".key"), UnixFileMode.UserRead | UnixFileMode.UserWrite);
        _t.Reopen();
        Assert.EndsWith(id + ".key", _t.Repo.MoveKeyOut(), StringComparison.Ordinal);
        Assert.False(File.Exists(InRepo("key")));
    }
}
