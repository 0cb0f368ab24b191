using System.Diagnostics;
using System.Text.Json;
using Backupd.Daemon.Offsite;
using Backupd.Integration.Fixtures;
using Backupd.Storage.Offsite;
using Backupd.Storage.Repository;
using Backupd.Storage.Tests.Offsite;
using Xunit.Abstractions;

namespace Backupd.Integration;

/// <summary>
/// Offsite copies over a real SSH connection (sshd on this machine, the user backupd-remote as the remote host,
/// `backupd serve` forced by authorized_keys), driven through the real backupd executable.
/// </summary>
[Trait("Category", "Integration")]
public sealed class OffsiteCopyTests(ITestOutputHelper output) : IDisposable
{
    private const long MiB = TestVm.MiB;
    private readonly SshRemote _remote = new();
    private string Repo => Path.Combine(_remote.Local, "repo");
    private string KeyFile => Path.Combine(_remote.Local, "offsite.key");

    public void Dispose() => _remote.Dispose();

    private static Task<(int ExitCode, string Stdout, string Stderr)> Run(string sshKey, params string[] args) =>
        BackupdProcess.RunAsync(SshRemote.Environment_(sshKey), args);

    private static async Task<string> CreateKeyAsync(string path)
    {
        var run = await BackupdProcess.RunAsync("key", "create", "--to", path);
        Assert.True(run.ExitCode == 0, run.Stderr);
        return path;
    }

    private static string PointOf(string json)
    {
        using var doc = JsonDocument.Parse(json);
        return doc.RootElement.TryGetProperty("restorePointId", out var p) ? p.GetString()! : doc.RootElement.GetProperty("pointId").GetString()!;
    }

    private async Task<string> BackupFileAsync(string path)
    {
        var run = await BackupdProcess.RunAsync("backup", "--file", path, "--to", Repo, "--json");
        Assert.True(run.ExitCode == 0, run.Stderr);
        return PointOf(run.Stdout);
    }

    private async Task<JsonElement> CopyAsync(string sshKey, string point, string target)
    {
        var run = await Run(sshKey, "copy", "--repository", Repo, "--point", point, "--to", target, "--key", KeyFile, "--json");
        Assert.True(run.ExitCode == 0, run.Stderr + run.Stdout);
        using var doc = JsonDocument.Parse(run.Stdout);
        output.WriteLine($"copy {point}: {run.Stdout.ReplaceLineEndings(" ")}");
        return doc.RootElement.Clone();
    }

    private string RandomFile(string name, long bytes)
    {
        var path = Path.Combine(_remote.Local, name);
        using var f = File.Create(path);
        var buffer = new byte[MiB];
        var rng = new Random(name.GetHashCode(StringComparison.Ordinal));
        for (long o = 0; o < bytes; o += buffer.Length)
        {
            rng.NextBytes(buffer);
            f.Write(buffer, 0, (int)Math.Min(buffer.Length, bytes - o));
        }
        return path;
    }

    private int RemoteChunks() => StoredChunks.Count(_remote.RepositoryPath);

    private string[] RemoteIndexes() => Directory.Exists(Path.Combine(_remote.RepositoryPath, "indexes"))
        ? Directory.EnumerateFiles(Path.Combine(_remote.RepositoryPath, "indexes"), "*.idx").ToArray()
        : [];

    private async Task AssertRestoresIdenticalAsync(string sshKey, string point, string fileKey, string target)
    {
        var fromLocal = Path.Combine(_remote.Local, $"local-{Guid.NewGuid():N}");
        var fromCopy = Path.Combine(_remote.Local, $"copy-{Guid.NewGuid():N}");
        var local = await BackupdProcess.RunAsync("restore", "--repository", Repo, "--point", point, "--file", fileKey, "--to", fromLocal);
        Assert.True(local.ExitCode == 0, local.Stderr);
        var copy = await Run(sshKey, "restore", "--from", target, "--point", point, "--file", fileKey, "--to", fromCopy, "--key", KeyFile);
        Assert.True(copy.ExitCode == 0, copy.Stderr);
        Assert.True(await FilesEqualAsync(fromLocal, fromCopy), $"{fileKey} of {point}: the copy's restore differs from the local one");
        File.Delete(fromLocal);
        File.Delete(fromCopy);
    }

    private static async Task<bool> FilesEqualAsync(string a, string b) => (await Tools.TryRunAsync("cmp", "-s", a, b)).ExitCode == 0;

    [Fact]
    public async Task Three_points_of_a_live_vm_copied_over_ssh_restore_byte_identical_and_append_only_refuses_delete()
    {
        await CreateKeyAsync(KeyFile);
        await using var vm = await TestVm.CreateAsync(new DiskSpec("vda"));
        await vm.StartAsync();
        using var config = new TempConfig("Host=127.0.0.1;Port=1;Username=none;Password=none;Database=none;Timeout=1");
        var points = new List<string>();
        var sent = new List<long>();
        var chunks = new List<long>();
        for (var i = 0; i < 3; i++)
        {
            await vm.WriteAsGuestAsync("vda", (4 + (2 * i)) * MiB, (byte)(0x40 + i), MiB);
            var backup = await BackupdProcess.RunAsync(null, ["--config", config.Path, "backup", "--domain", vm.Name, "--to", Repo, "--no-catalog", "--json"]);
            Assert.True(backup.ExitCode == 0, backup.Stderr);
            points.Add(PointOf(backup.Stdout));
            var copy = await CopyAsync(_remote.AppendOnlyKey, points[^1], _remote.Target);
            sent.Add(copy.GetProperty("chunksSent").GetInt64());
            chunks.Add(copy.GetProperty("chunks").GetInt64());
        }
        // Each later copy sends only what changed: far fewer chunks than its point has. (Not "fewer than the first copy": this disk's
        // data is a few constant patterns, so the first copy sends only ~8 unique chunks, about what the qcow2 metadata and the dirty
        // bitmaps that changed-block tracking rewrites at every backup add to each later one.)
        Assert.True(sent[1] * 2 < chunks[1] && sent[2] * 2 < chunks[2], $"incremental copies sent {sent[1]} of {chunks[1]} and {sent[2]} of {chunks[2]} chunks");
        Assert.Equal(3, RemoteIndexes().Length);

        using (var local = BackupRepository.Open(Repo))
        {
            foreach (var p in points)
                foreach (var f in local.FindPoint(p)!.Files)
                    await AssertRestoresIdenticalAsync(_remote.AppendOnlyKey, p, f.FileKey, _remote.Target);
        }
        var verify = await Run(_remote.AppendOnlyKey, "verify", "--target", _remote.Target, "--read-data", "--key", KeyFile);
        Assert.True(verify.ExitCode == 0, verify.Stderr + verify.Stdout);
        Assert.Contains("ok: 3 points", verify.Stdout, StringComparison.Ordinal);

        // Deleting: refused through the append-only key, done through the key that may delete.
        var key = OffsiteKey.Load(KeyFile);
        Environment.SetEnvironmentVariable(CopyTarget.SshVariable, SshRemote.Environment_(_remote.AppendOnlyKey)["BACKUPD_SSH"]);
        using (var appendOnly = CopyRepository.Open(CopyTarget.Parse(_remote.Target).Connect(), key, create: false))
        {
            var refused = Assert.Throws<ChunkStoreRefusedException>(() => appendOnly.Delete(points[0]));
            Assert.Contains("append-only", refused.Message, StringComparison.Ordinal);
        }
        Assert.Equal(3, RemoteIndexes().Length);
        Environment.SetEnvironmentVariable(CopyTarget.SshVariable, SshRemote.Environment_(_remote.WritableKey)["BACKUPD_SSH"]);
        using (var writable = CopyRepository.Open(CopyTarget.Parse(_remote.Target).Connect(), key, create: false))
        {
            writable.Delete(points[0]);
            Assert.Equal(2, writable.List().Count);
        }
        Environment.SetEnvironmentVariable(CopyTarget.SshVariable, null);
    }

    [Fact]
    public async Task A_whole_domain_restores_from_a_copy_over_ssh_as_a_new_domain_with_byte_identical_disks()
    {
        await CreateKeyAsync(KeyFile);
        await using var vm = await TestVm.CreateAsync(new DiskSpec("vda"), new DiskSpec("vdb", Format: "raw"));
        await vm.StartAsync();
        using var config = new TempConfig("Host=127.0.0.1;Port=1;Username=none;Password=none;Database=none;Timeout=1");
        var points = new List<string>();
        for (var i = 0; i < 2; i++)
        {
            await vm.WriteAsGuestAsync("vda", (3 + i) * MiB, (byte)(0x21 + i), MiB);
            await vm.WriteAsGuestAsync("vdb", (1 + i) * MiB, (byte)(0x31 + i), MiB);
            var backup = await BackupdProcess.RunAsync(null, ["--config", config.Path, "backup", "--domain", vm.Name, "--to", Repo, "--no-catalog", "--json"]);
            Assert.True(backup.ExitCode == 0, backup.Stderr);
            points.Add(PointOf(backup.Stdout));
            await CopyAsync(_remote.AppendOnlyKey, points[^1], _remote.Target);
        }
        var name = $"bkd-{Guid.NewGuid():N}"[..12] + "-fromcopy";
        var images = Path.Combine(_remote.Local, "images");
        try
        {
            // The older point, by --point, as a new domain: defined (not started), its disks those of the point.
            var run = await Run(_remote.AppendOnlyKey, "restore", "--domain", vm.Name, "--from", _remote.Target, "--point", points[0], "--as-domain", name,
                "--images-dir", images, "--key", KeyFile, "--json");
            Assert.True(run.ExitCode == 0, run.Stderr + run.Stdout);
            output.WriteLine(run.Stdout);
            var result = JsonDocument.Parse(run.Stdout).RootElement;
            Assert.Equal("as-domain", result.GetProperty("mode").GetString());
            Assert.Equal(points[0], result.GetProperty("pointId").GetString());
            Assert.Equal("shut off", (await Tools.Virsh("domstate", name)).Trim());
            var xml = await Tools.Virsh("dumpxml", "--inactive", name);
            Assert.DoesNotContain(vm.Uuid, xml, StringComparison.Ordinal);
            await AssertDisksAsync(result, points[0], 2);
            foreach (var disk in result.GetProperty("disks").EnumerateArray())
                Assert.Contains(disk.GetProperty("imagePath").GetString()!, xml, StringComparison.Ordinal);

            // The newest point by default, the domain named by UUID, into a directory.
            var to = Path.Combine(_remote.Local, "to");
            var dir = await Run(_remote.AppendOnlyKey, "restore", "--domain", vm.Uuid, "--from", _remote.Target, "--to", to, "--key", KeyFile, "--json");
            Assert.True(dir.ExitCode == 0, dir.Stderr + dir.Stdout);
            var latest = JsonDocument.Parse(dir.Stdout).RootElement;
            Assert.Equal(points[1], latest.GetProperty("pointId").GetString());
            await AssertDisksAsync(latest, points[1], 2);

            var unknown = await Run(_remote.AppendOnlyKey, "restore", "--domain", "no-such-vm", "--from", _remote.Target, "--to", Path.Combine(_remote.Local, "x"), "--key", KeyFile);
            Assert.Equal(3, unknown.ExitCode);
            Assert.Contains("holds no copied point of no-such-vm", unknown.Stderr, StringComparison.Ordinal);
        }
        finally
        {
            await Tools.TryRunAsync("virsh", "-c", "qemu:///system", "undefine", name);
        }
    }

    /// <summary>Each restored disk image equals the local repository's restore of the same file of the point.</summary>
    private async Task AssertDisksAsync(JsonElement result, string point, int disks)
    {
        var restored = result.GetProperty("disks").EnumerateArray().ToList();
        Assert.Equal(disks, restored.Count);
        using var local = BackupRepository.Open(Repo);
        var files = local.FindPoint(point)!.Files;
        foreach (var disk in restored)
        {
            var file = files.Single(f => global::Backupd.Storage.Catalog.RestorePointFileRecord.ParseKey(f.FileKey) == (disk.GetProperty("disk").GetString()!, 0));
            var fromLocal = Path.Combine(_remote.Local, $"local-{Guid.NewGuid():N}");
            var restore = await BackupdProcess.RunAsync("restore", "--repository", Repo, "--point", point, "--file", file.FileKey, "--to", fromLocal);
            Assert.True(restore.ExitCode == 0, restore.Stderr);
            var image = disk.GetProperty("imagePath").GetString()!;
            if (disk.GetProperty("format").GetString() == "qcow2")
            {
                // A domain restore strips the dirty bitmaps changed-block tracking left in the qcow2 (a file-level restore
                // keeps the file as stored), so the files differ in qcow2 metadata: what the guest reads must be identical.
                var compare = await Tools.TryRunAsync("qemu-img", "compare", "-f", "qcow2", "-F", "qcow2", fromLocal, image);
                Assert.True(compare.ExitCode == 0, $"{file.FileKey} of {point} restored from the copy differs from the local restore: {compare.Stdout}{compare.Stderr}");
            }
            else
                Assert.True(await FilesEqualAsync(fromLocal, image), $"{file.FileKey} of {point} restored from the copy differs from the local restore");
            File.Delete(fromLocal);
        }
    }

    [Fact]
    public async Task Two_clones_of_one_template_are_stored_once()
    {
        await CreateKeyAsync(KeyFile);
        var template = RandomFile("template-data", 8 * MiB);
        await using var a = await TestVm.CreateAsync(new DiskSpec("vda", WithTemplate: true));
        await using var b = await TestVm.CreateAsync(new DiskSpec("vda", WithTemplate: true));
        foreach (var vm in new[] { a, b })
            await Tools.RunAsync("qemu-io", "-f", "qcow2", "-c", $"write -s {template} {2 * MiB} {8 * MiB}", vm.Disk("vda").TemplatePath!);
        using var config = new TempConfig("Host=127.0.0.1;Port=1;Username=none;Password=none;Database=none;Timeout=1");
        var copies = new List<JsonElement>();
        var stored = new List<long>();
        foreach (var vm in new[] { a, b })
        {
            var backup = await BackupdProcess.RunAsync(null, ["--config", config.Path, "backup", "--domain", vm.Name, "--to", Repo, "--no-catalog", "--json"]);
            Assert.True(backup.ExitCode == 0, backup.Stderr);
            copies.Add(await CopyAsync(_remote.WritableKey, PointOf(backup.Stdout), _remote.Target));
            stored.Add(StoredChunks.Bytes(_remote.RepositoryPath));
        }
        var first = copies[0].GetProperty("chunksSent").GetInt64();
        var second = copies[1].GetProperty("chunksSent").GetInt64();
        output.WriteLine($"clone A sent {first} chunks, clone B {second}; chunks stored {stored[0]} bytes after A, {stored[1]} after B");
        Assert.True(first >= 8 * MiB / CopyRepository.DefaultChunkSize, $"the first clone sent only {first} chunks");
        Assert.True(second * 10 < first, $"the second clone sent {second} chunks, the first {first}: the template was not deduplicated");
        Assert.True(stored[1] - stored[0] < (stored[0] / 10), $"stored {stored[0]} then {stored[1]} bytes");
    }

    [Fact]
    public async Task Killing_the_client_or_the_server_mid_copy_lists_no_incomplete_point_and_the_next_copy_finishes()
    {
        await CreateKeyAsync(KeyFile);
        var image = RandomFile("big.img", 384 * MiB);
        var point = await BackupFileAsync(image);
        var args = new[] { "copy", "--repository", Repo, "--point", point, "--to", _remote.Target, "--key", KeyFile };

        // kill -9 of the client
        using (var client = BackupdProcess.StartCollecting(SshRemote.Environment_(_remote.WritableKey), out var first, args))
        {
            await Eventually.WaitUntilAsync(() => RemoteChunks() > 200, TimeSpan.FromMinutes(2), "chunks arriving at the remote", first);
            client.Kill(); // SIGKILL
            await client.WaitForExitAsync();
        }
        Assert.Empty(RemoteIndexes());
        var listed = await Run(_remote.WritableKey, "verify", "--target", _remote.Target, "--key", KeyFile);
        Assert.Contains("ok: 0 points", listed.Stdout, StringComparison.Ordinal);

        // kill -9 of the server
        var before = RemoteChunks();
        using (var client = BackupdProcess.StartCollecting(SshRemote.Environment_(_remote.WritableKey), out var lines, args))
        {
            await Eventually.WaitUntilAsync(() => RemoteChunks() > before + 200, TimeSpan.FromMinutes(2), "more chunks arriving", lines);
            var servers = _remote.ServerPids();
            Assert.NotEmpty(servers);
            foreach (var pid in servers)
                Process.GetProcessById(pid).Kill();
            await client.WaitForExitAsync();
            Assert.NotEqual(0, client.ExitCode);
            Assert.Contains(lines, l => l.Contains(_remote.Target, StringComparison.Ordinal) && l.Contains("next copy sends only what is missing", StringComparison.Ordinal));
        }
        Assert.Empty(RemoteIndexes());

        var final = await CopyAsync(_remote.WritableKey, point, _remote.Target);
        Assert.True(final.GetProperty("chunksSent").GetInt64() < final.GetProperty("chunks").GetInt64() - 400, "the last copy sent chunks that were already there");
        Assert.Single(RemoteIndexes());
        await AssertRestoresIdenticalAsync(_remote.WritableKey, point, Path.GetFileName(image), _remote.Target);
    }

    [Fact]
    public async Task A_flipped_byte_is_found_by_verify_and_never_restored_and_a_wrong_key_is_refused()
    {
        await CreateKeyAsync(KeyFile);
        var point = await BackupFileAsync(RandomFile("small.img", 4 * MiB));
        await CopyAsync(_remote.WritableKey, point, _remote.Target);

        var wrong = await CreateKeyAsync(Path.Combine(_remote.Local, "other.key"));
        var refused = await Run(_remote.WritableKey, "restore", "--from", _remote.Target, "--point", point, "--file", "small.img", "--to", Path.Combine(_remote.Local, "w"), "--key", wrong);
        Assert.Equal(1, refused.ExitCode);
        Assert.Contains("does not open this copy repository", refused.Stderr, StringComparison.Ordinal);
        Assert.False(File.Exists(Path.Combine(_remote.Local, "w")));

        var chunk = StoredChunks.FlipByte(_remote.RepositoryPath).ToHex();

        var verify = await Run(_remote.WritableKey, "verify", "--target", _remote.Target, "--read-data", "--key", KeyFile);
        Assert.Equal(5, verify.ExitCode);
        Assert.Contains(chunk, verify.Stdout, StringComparison.Ordinal);
        var target = Path.Combine(_remote.Local, "restored");
        var restore = await Run(_remote.WritableKey, "restore", "--from", _remote.Target, "--point", point, "--file", "small.img", "--to", target, "--key", KeyFile);
        Assert.Equal(5, restore.ExitCode);
        Assert.False(File.Exists(target));
    }

    [Fact]
    public async Task A_full_target_file_system_is_a_clear_error_and_the_local_point_is_untouched()
    {
        await CreateKeyAsync(KeyFile);
        var point = await BackupFileAsync(RandomFile("fill.img", 24 * MiB));
        var mount = Path.Combine(_remote.Local, "small-fs");
        Directory.CreateDirectory(mount);
        await Tools.RunAsync("mount", "-t", "tmpfs", "-o", "size=6m", "tmpfs", mount);
        try
        {
            var run = await BackupdProcess.RunAsync("copy", "--repository", Repo, "--point", point, "--to", mount, "--key", KeyFile);
            Assert.Equal(1, run.ExitCode);
            Assert.Contains("file system is full", run.Stderr, StringComparison.Ordinal);
            Assert.Empty(Directory.EnumerateFiles(Path.Combine(mount, "indexes")));
            Assert.Empty(Directory.EnumerateFiles(mount, ".*.tmp", SearchOption.AllDirectories));
        }
        finally
        {
            await Tools.RunAsync("umount", mount);
        }
        var verify = await BackupdProcess.RunAsync("verify", "--repository", Repo);
        Assert.True(verify.ExitCode == 0, verify.Stdout + verify.Stderr);
    }
}
