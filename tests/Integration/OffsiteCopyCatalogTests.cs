using System.Text.Json;
using Backupd.Integration.Fixtures;
using Backupd.Storage.Tests.Offsite;
using Npgsql;
using Xunit.Abstractions;

namespace Backupd.Integration;

/// <summary>
/// Copies in the catalog (issue 15 item 3): a copy is a run of kind copy, the point lists its copy targets, `copy`
/// finds the point's repository in the catalog; over the real sshd (user backupd-remote, scripts/setup-env).
/// </summary>
[Trait("Category", "Integration")]
public sealed class OffsiteCopyCatalogTests(PostgresDatabase database, ITestOutputHelper output) : CatalogProcessTestBase(database), IDisposable
{
    private readonly SshRemote _remote = new();
    private string KeyFile => Path.Combine(_remote.Local, "offsite.key");

    public new void Dispose()
    {
        _remote.Dispose();
        base.Dispose();
    }

    private async Task<string> BackupAsync(TestVm vm)
    {
        var run = await Backupd("backup", "--domain", vm.Name, "--to", Repository, "--json");
        Assert.True(run.ExitCode == 0, run.Stderr);
        using var doc = JsonDocument.Parse(run.Stdout);
        return doc.RootElement.GetProperty("restorePointId").GetString()!;
    }

    private async Task<(long Count, string? State, string? Error)> CopyRunAsync(string point)
    {
        await using var connection = new NpgsqlConnection(Database.ConnectionString);
        await connection.OpenAsync();
        await using var command = new NpgsqlCommand(
            "select count(*) over (), state, error from runs where kind = 'copy' and detail->'copy'->>'pointId' = @p order by id desc limit 1", connection);
        command.Parameters.AddWithValue("p", point);
        await using var reader = await command.ExecuteReaderAsync();
        if (!await reader.ReadAsync()) return (0, null, null);
        return (reader.GetInt64(0), reader.GetString(1), reader.IsDBNull(2) ? null : reader.GetString(2));
    }

    [Fact]
    public async Task A_copy_without_repository_is_found_in_the_catalog_recorded_as_a_copy_run_and_listed_on_the_point()
    {
        Assert.Equal(0, (await BackupdProcess.RunAsync("key", "create", "--to", KeyFile)).ExitCode);
        await using var vm = await TestVm.CreateAsync(new DiskSpec("vda"));
        await vm.StartAsync();
        await vm.WriteAsGuestAsync("vda", 4 * MiB, 0x5a, MiB);
        var point = await BackupAsync(vm);

        // A wrong key: the run is recorded failed, the point gets no copy.
        var wrongKey = Path.Combine(_remote.Local, "wrong.key");
        var env = SshRemote.Environment_(_remote.AppendOnlyKey);
        Assert.Equal(0, (await Backupd(env, "copy", "--point", point, "--to", _remote.Target, "--key", KeyFile, "--json")).ExitCode);
        Assert.Equal(0, (await BackupdProcess.RunAsync("key", "create", "--to", wrongKey)).ExitCode);
        var refused = await Backupd(env, "copy", "--point", point, "--to", _remote.Target, "--key", wrongKey);
        Assert.Equal(1, refused.ExitCode);
        var failed = await CopyRunAsync(point);
        Assert.Equal((2L, "failed"), (failed.Count, failed.State));
        Assert.Contains("does not open this copy repository", failed.Error, StringComparison.Ordinal);

        var list = await Backupd("list", "--domain", vm.Name, "--json");
        Assert.True(list.ExitCode == 0, list.Stderr);
        output.WriteLine(list.Stdout);
        using (var doc = JsonDocument.Parse(list.Stdout))
        {
            var row = doc.RootElement.EnumerateArray().Single(p => p.GetProperty("id").GetString() == point);
            Assert.Equal([_remote.Target], row.GetProperty("copies").EnumerateArray().Select(c => c.GetString()!).ToArray());
        }
        var show = await Backupd("show", point, "--json");
        Assert.True(show.ExitCode == 0, show.Stderr);
        using (var doc = JsonDocument.Parse(show.Stdout))
        {
            var copy = doc.RootElement.GetProperty("copies").EnumerateArray().Single();
            Assert.Equal(_remote.Target, copy.GetProperty("target").GetString());
            Assert.True(copy.GetProperty("chunksSent").GetInt64() > 0, show.Stdout);
            Assert.True(copy.GetProperty("runId").GetInt64() > 0, show.Stdout);
        }
        var text = await Backupd("list", "--domain", vm.Name);
        Assert.Contains(_remote.Target, text.Stdout, StringComparison.Ordinal);

        // A second, local target: both listed; the local one under its full path.
        var usb = Path.Combine(_remote.Local, "usb", "..", "usb");
        var local = await Backupd("copy", "--point", point, "--to", usb, "--key", KeyFile, "--json");
        Assert.True(local.ExitCode == 0, local.Stderr);
        using (var doc = JsonDocument.Parse((await Backupd("show", point, "--json")).Stdout))
        {
            var targets = doc.RootElement.GetProperty("copies").EnumerateArray().Select(c => c.GetProperty("target").GetString()).ToHashSet();
            Assert.Equal(new HashSet<string?> { _remote.Target, Path.GetFullPath(usb) }, targets);
        }

        // Without a catalog and without --repository there is nothing to find the point in.
        var bare = await BackupdProcess.RunAsync(null, ["copy", "--point", point, "--to", usb, "--key", KeyFile, "--json"]);
        Assert.Equal(3, bare.ExitCode);
        Assert.Contains("--repository", bare.Stdout + bare.Stderr, StringComparison.Ordinal);
    }

    private async Task<List<(string Target, string State, string PointId)>> CopyRunsAsync(string policy)
    {
        await using var connection = new NpgsqlConnection(Database.ConnectionString);
        await connection.OpenAsync();
        await using var command = new NpgsqlCommand(
            """
            select r.detail->'copy'->>'target', r.state, r.detail->'copy'->>'pointId' from runs r join policies p on p.id = r.policy_id
            where r.kind = 'copy' and p.name = @p and r.trigger = 'policy' order by r.id
            """, connection);
        command.Parameters.AddWithValue("p", policy);
        var rows = new List<(string, string, string)>();
        await using var reader = await command.ExecuteReaderAsync();
        while (await reader.ReadAsync()) rows.Add((reader.GetString(0), reader.GetString(1), reader.GetString(2)));
        return rows;
    }

    [Fact]
    public async Task A_policys_copies_follow_each_backup_a_failing_target_is_retried_and_never_fails_the_local_point()
    {
        Assert.Equal(0, (await BackupdProcess.RunAsync("key", "create", "--to", KeyFile)).ExitCode);
        await using var vm = await TestVm.CreateAsync(new DiskSpec("vda"));
        await vm.StartAsync();
        await vm.WriteAsGuestAsync("vda", 2 * MiB, 0x3c, MiB);
        // A target that can never be created: a directory under a regular file.
        var blocker = Path.Combine(_remote.Local, "not-a-directory");
        await File.WriteAllTextAsync(blocker, "x");
        var broken = Path.Combine(blocker, "copies");
        var policy = $"copies-{vm.Name}";
        await File.WriteAllTextAsync(Path.Combine(Config.PoliciesDirectory, "copies.yaml"), $"""
            name: {policy}
            domains: [{vm.Name}]
            schedule: every 5s
            repository: {Repository}
            copies:
              - to: {_remote.Target}
                key: {KeyFile}
                bandwidth: 50MiB/s
                retention:
                  keep-last: 2
              - to: {broken}
                key: {KeyFile}
                retries: 1
                retry-delay: 1s
            """);
        using var daemon = BackupdProcess.StartCollecting(SshRemote.Environment_(_remote.AppendOnlyKey), out var log, "--config", Config.Path, "daemon");
        List<(string Target, string State, string PointId)> runs = [];
        try
        {
            await Eventually.WaitUntilAsync(() =>
            {
                runs = CopyRunsAsync(policy).GetAwaiter().GetResult();
                return runs.Count(r => r.Target == broken && r.State == "failed") >= 2 && runs.Any(r => r.Target == _remote.Target && r.State == "succeeded");
            }, TimeSpan.FromSeconds(180), "a copy to the good target and two failed attempts at the broken one", log);
        }
        finally
        {
            await Tools.RunAsync("kill", "-TERM", daemon.Id.ToString(System.Globalization.CultureInfo.InvariantCulture));
            await daemon.WaitForExitAsync();
        }
        foreach (var r in runs) output.WriteLine($"{r.PointId} -> {r.Target}: {r.State}");
        var first = runs.First(r => r.Target == _remote.Target && r.State == "succeeded").PointId;
        // The first point's broken target: the attempt and exactly one retry (retries: 1), both failed.
        Assert.Equal(2, runs.Count(r => r.Target == broken && r.PointId == first));
        Assert.Contains(log, l => l.Contains("CopyGaveUp", StringComparison.Ordinal) || l.Contains("giving up until the next backup", StringComparison.Ordinal));

        var list = await Backupd("list", "--domain", vm.Name, "--json");
        using (var doc = JsonDocument.Parse(list.Stdout))
        {
            var row = doc.RootElement.EnumerateArray().Single(p => p.GetProperty("id").GetString() == first);
            Assert.Equal([_remote.Target], row.GetProperty("copies").EnumerateArray().Select(c => c.GetString()!).ToArray());
        }
        // The local point is whole, and the copy restores byte-identical to it.
        var verify = await Backupd("verify", "--repository", Repository);
        Assert.True(verify.ExitCode == 0, verify.Stdout + verify.Stderr);
        var fromLocal = Path.Combine(_remote.Local, "local.img");
        var fromCopy = Path.Combine(_remote.Local, "copy.img");
        var fileKey = JsonDocument.Parse((await Backupd("show", first, "--json")).Stdout).RootElement.GetProperty("files")[0].GetProperty("fileKey").GetString()!;
        Assert.Equal(0, (await Backupd("restore", "--repository", Repository, "--point", first, "--file", fileKey, "--to", fromLocal)).ExitCode);
        var restored = await Backupd(SshRemote.Environment_(_remote.AppendOnlyKey), "restore", "--from", _remote.Target, "--point", first, "--file", fileKey, "--to", fromCopy, "--key", KeyFile);
        Assert.True(restored.ExitCode == 0, restored.Stderr);
        Assert.Equal(0, (await Tools.TryRunAsync("cmp", "-s", fromLocal, fromCopy)).ExitCode);
    }

    private int RemoteIndexes() => Directory.EnumerateFiles(Path.Combine(_remote.RepositoryPath, "indexes"), "*.idx").Count();

    private int RemoteChunks() => StoredChunks.Count(_remote.RepositoryPath);

    private async Task<string[]> CopiesOfAsync(string point)
    {
        using var doc = JsonDocument.Parse((await Backupd("show", point, "--json")).Stdout);
        return doc.RootElement.GetProperty("copies").EnumerateArray().Select(c => c.GetProperty("target").GetString()!).ToArray();
    }

    [Fact]
    public async Task Prune_of_a_copy_is_refused_append_only_and_done_by_the_side_that_may_delete_with_chunks_collected_and_rows_updated()
    {
        Assert.Equal(0, (await BackupdProcess.RunAsync("key", "create", "--to", KeyFile)).ExitCode);
        await using var vm = await TestVm.CreateAsync(new DiskSpec("vda"));
        await vm.StartAsync();
        var appendOnly = SshRemote.Environment_(_remote.AppendOnlyKey);
        var writable = SshRemote.Environment_(_remote.WritableKey);
        var points = new List<string>();
        for (var i = 0; i < 4; i++)
        {
            await vm.WriteAsGuestAsync("vda", (2 + (2 * i)) * MiB, (byte)(0x61 + i), 2 * MiB);
            points.Add(await BackupAsync(vm));
            var copy = await Backupd(appendOnly, "copy", "--point", points[^1], "--to", _remote.Target, "--key", KeyFile, "--json");
            Assert.True(copy.ExitCode == 0, copy.Stderr);
        }
        var chunks = RemoteChunks();

        // The append-only key: a dry run says what would go, a real prune is refused and nothing changes.
        var dry = await Backupd(appendOnly, "prune", "--target", _remote.Target, "--keep-last", "2", "--key", KeyFile, "--dry-run");
        Assert.True(dry.ExitCode == 0, dry.Stderr + dry.Stdout);
        output.WriteLine(dry.Stdout);
        Assert.Equal(2, dry.Stdout.Split('\n').Count(l => l.StartsWith("would remove", StringComparison.Ordinal)));
        Assert.Contains(points[0], dry.Stdout, StringComparison.Ordinal);
        var refused = await Backupd(appendOnly, "prune", "--target", _remote.Target, "--keep-last", "2", "--key", KeyFile);
        Assert.NotEqual(0, refused.ExitCode);
        Assert.Contains("append-only", refused.Stderr, StringComparison.Ordinal);
        Assert.Equal(4, RemoteIndexes());
        Assert.Equal(chunks, RemoteChunks());
        Assert.Equal([_remote.Target], await CopiesOfAsync(points[0]));

        // The key allowed to delete: the two oldest points go, their chunks no other point names are collected,
        // and the catalog no longer lists the copy on them.
        var pruned = await Backupd(writable, "prune", "--target", _remote.Target, "--keep-last", "2", "--key", KeyFile, "--json");
        Assert.True(pruned.ExitCode == 0, pruned.Stderr + pruned.Stdout);
        output.WriteLine(pruned.Stdout);
        using (var doc = JsonDocument.Parse(pruned.Stdout))
        {
            Assert.Equal(new[] { points[0], points[1] }.Order(), doc.RootElement.GetProperty("indexesRemoved").EnumerateArray().Select(e => e.GetString()!).Order());
            Assert.True(doc.RootElement.GetProperty("chunksRemoved").GetInt64() > 0, pruned.Stdout);
        }
        Assert.Equal(2, RemoteIndexes());
        Assert.True(RemoteChunks() < chunks, $"{RemoteChunks()} chunks stored after the prune, {chunks} before");
        Assert.Empty(await CopiesOfAsync(points[0]));
        Assert.Empty(await CopiesOfAsync(points[1]));
        Assert.Equal([_remote.Target], await CopiesOfAsync(points[3]));
        var verify = await Backupd(writable, "verify", "--target", _remote.Target, "--read-data", "--key", KeyFile);
        Assert.True(verify.ExitCode == 0, verify.Stdout + verify.Stderr);
        Assert.Contains("ok: 2 points", verify.Stdout, StringComparison.Ordinal);

        // On the repository's host, as its owner, by path: the next oldest goes; the client's next prune then drops
        // its catalog row too.
        var remoteKey = $"{_remote.RepositoryPath}/../prune-{Guid.NewGuid():N}.key";
        File.Copy(KeyFile, remoteKey);
        await Tools.RunAsync("chown", $"{SshRemote.User}:", remoteKey);
        try
        {
            var onHost = await Tools.TryRunAsync("runuser", "-u", SshRemote.User, "--", "dotnet", $"{_remote.ServeDirectory}/backupd.dll",
                "prune", "--repository", _remote.RepositoryPath, "--keep-last", "1", "--key", remoteKey, "--no-catalog");
            Assert.True(onHost.ExitCode == 0, onHost.Stdout + onHost.Stderr);
            Assert.Contains("1 of 2 points removed", onHost.Stdout, StringComparison.Ordinal);
        }
        finally
        {
            File.Delete(remoteKey);
        }
        Assert.Equal(1, RemoteIndexes());
        Assert.Equal([_remote.Target], await CopiesOfAsync(points[2]));
        var again = await Backupd(writable, "prune", "--target", _remote.Target, "--keep-last", "1", "--key", KeyFile);
        Assert.True(again.ExitCode == 0, again.Stderr + again.Stdout);
        Assert.Contains("0 of 1 points removed", again.Stdout, StringComparison.Ordinal);
        Assert.Empty(await CopiesOfAsync(points[2]));
        var restored = Path.Combine(_remote.Local, "kept.img");
        var fileKey = JsonDocument.Parse((await Backupd("show", points[3], "--json")).Stdout).RootElement.GetProperty("files")[0].GetProperty("fileKey").GetString()!;
        var fromCopy = await Backupd(writable, "restore", "--from", _remote.Target, "--point", points[3], "--file", fileKey, "--to", restored, "--key", KeyFile);
        Assert.True(fromCopy.ExitCode == 0, fromCopy.Stderr);
        var fromLocal = Path.Combine(_remote.Local, "kept-local.img");
        Assert.Equal(0, (await Backupd("restore", "--repository", Repository, "--point", points[3], "--file", fileKey, "--to", fromLocal)).ExitCode);
        Assert.Equal(0, (await Tools.TryRunAsync("cmp", "-s", fromLocal, restored)).ExitCode);
    }
}
