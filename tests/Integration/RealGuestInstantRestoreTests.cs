using System.Diagnostics;
using System.Text.Json;
using System.Text.RegularExpressions;
using System.Xml.Linq;
using Backupd.Integration.Fixtures;
using Backupd.Storage.Catalog;
using Xunit.Abstractions;

namespace Backupd.Integration;

/// <summary>
/// A real guest with a 96 MiB file of random data on its disk (a pull at 1 MiB/s takes long enough to look at), a
/// catalog, three quiesced points of it in a repository, and a policy over that repository (for `prune`).
/// </summary>
public sealed class InstantRestoreFixture : IAsyncLifetime
{
    public PostgresDatabase Database { get; } = new();
    public TestGuest Guest { get; private set; } = null!;
    public TempConfig Config { get; private set; } = null!;
    public string Repository => Path.Combine(Guest.Directory, "repo");
    /// <summary>Oldest first.</summary>
    public List<string> Points { get; } = [];

    public async Task InitializeAsync()
    {
        await Database.InitializeAsync();
        await CatalogMigrator.MigrateAsync(Database.ConnectionString, CancellationToken.None);
        Config = new TempConfig(Database.ConnectionString);
        Guest = await TestGuest.BootAsync(dataDiskMiB: 256, blobMiB: 96);
        await File.WriteAllTextAsync(Path.Combine(Config.PoliciesDirectory, "instant.yaml"),
            $"policies:\n  - {{name: instant, domains: [{Guest.Name}], schedule: daily, repository: {Repository}, retention: {{keep-last: 1}}}}\n");
        for (var i = 0; i < 3; i++)
        {
            await Guest.WaitForSyncedAsync(Guest.Synced() + 3, TimeSpan.FromMinutes(2));
            var (code, stdout, stderr) = await Backupd("backup", "--domain", Guest.Name, "--to", Repository, "--quiesce", "required", "--json");
            if (code != 0) throw new InvalidOperationException($"backup exited {code}: {stdout}{stderr}");
            Points.Add(JsonDocument.Parse(stdout).RootElement.GetProperty("restorePointId").GetString()!);
        }
    }

    public Task<(int ExitCode, string Stdout, string Stderr)> Backupd(params string[] args) => BackupdProcess.RunAsync(null, ["--config", Config.Path, .. args]);

    public async Task DisposeAsync()
    {
        if (Guest is not null) await Guest.DisposeAsync();
        Config?.Dispose();
        await Database.DisposeAsync();
    }
}

/// <summary>
/// Issue 11 item 4: `restore --as-domain NEW --instant` of a real guest's points. NEW runs (its agent answers) while
/// its disk is still being pulled out of the repository; meanwhile the group is locked against backups, prune and
/// forget, also after a kill -9 of backupd, until `recover` resumes the pull; at the end NEW depends on nothing in the
/// repository and its disk holds the point's data.
/// </summary>
[Trait("Category", "Integration")]
public sealed class RealGuestInstantRestoreTests(InstantRestoreFixture fixture, ITestOutputHelper output) : IClassFixture<InstantRestoreFixture>
{
    private static string NewName() => $"bkd-i{Guid.NewGuid():N}"[..13];

    /// <summary>The files of the image's backing chain, top first (qemu-img info -U: the image is in use).</summary>
    private static async Task<List<string>> ChainAsync(string image) =>
        JsonDocument.Parse(await Tools.RunAsync("qemu-img", "info", "-U", "--backing-chain", "--output=json", image)).RootElement
            .EnumerateArray().Select(e => e.GetProperty("filename").GetString()!).ToList();

    private static async Task<string?> AgentPingAsync(string domain)
    {
        var (code, stdout, _) = await Tools.TryRunAsync("virsh", "-c", "qemu:///system", "qemu-agent-command", "--timeout", "5", domain, """{"execute":"guest-ping"}""");
        return code == 0 ? stdout.Trim() : null;
    }

    private static async Task<TimeSpan> WaitForAgentAsync(string domain, Stopwatch since, TimeSpan timeout)
    {
        while (await AgentPingAsync(domain) is null)
        {
            Assert.True(since.Elapsed < timeout, $"the agent of {domain} did not answer within {timeout}");
            await Task.Delay(250);
        }
        return since.Elapsed;
    }

    private static async Task<string> StateAsync(string domain) => (await Tools.TryRunAsync("virsh", "-c", "qemu:///system", "domstate", domain)).Stdout.Trim();

    /// <summary>
    /// Whether vda has a block job. virsh's wording varies ("Block Pull: [ 3 %]", "Pull", and no progress line at all
    /// while the job's end is still 0: only "Bandwidth limit: ..."), so only its answer for no job is relied on.
    /// </summary>
    private static async Task<bool> PullRunningAsync(string domain)
    {
        var (code, stdout, stderr) = await Tools.TryRunAsync("virsh", "-c", "qemu:///system", "blockjob", domain, "vda", "--info");
        Assert.True(code == 0, $"virsh blockjob --info exited {code}: {stderr}");
        return !stdout.Contains("No current block job", StringComparison.OrdinalIgnoreCase) && stdout.Trim().Length > 0;
    }

    /// <summary>Shut NEW down through its agent (the guest's only clean shutdown) and wait for it to be off.</summary>
    private static async Task ShutdownAsync(string domain)
    {
        await Tools.TryRunAsync("virsh", "-c", "qemu:///system", "qemu-agent-command", "--timeout", "10", domain, """{"execute":"guest-shutdown"}""");
        var clock = Stopwatch.StartNew();
        while (await StateAsync(domain) != "shut off")
        {
            Assert.True(clock.Elapsed < TimeSpan.FromMinutes(2), $"{domain} did not shut down");
            await Task.Delay(250);
        }
    }

    private static async Task RemoveAsync(string domain, string directory)
    {
        await Tools.TryRunAsync("virsh", "-c", "qemu:///system", "destroy", domain);
        await Tools.TryRunAsync("virsh", "-c", "qemu:///system", "undefine", domain);
        if (Directory.Exists(directory)) Directory.Delete(directory, recursive: true);
    }

    /// <summary>The point's data as a plain restore gives it: the writer's manifest and the blob's digest.</summary>
    private async Task<(IReadOnlyList<string> Manifest, string? Blob)> PointContentAsync(string point)
    {
        var to = Path.Combine(fixture.Guest.Directory, $"plain-{point}");
        try
        {
            var (code, stdout, stderr) = await fixture.Backupd("restore", "--domain", fixture.Guest.Name, "--point", point, "--to", to);
            Assert.True(code == 0, $"plain restore exited {code}: {stdout}{stderr}");
            return await GuestDisk.ContentAsync(Directory.EnumerateFiles(to, "*.qcow2").Single(), "qcow2");
        }
        finally
        {
            if (Directory.Exists(to)) Directory.Delete(to, recursive: true);
        }
    }

    /// <summary>After a clean shutdown of NEW: its disk is clean, every manifest file intact, and it holds the point's data (plus what NEW's writer added).</summary>
    private static async Task AssertHoldsPointAsync(string overlay, (IReadOnlyList<string> Manifest, string? Blob) point)
    {
        var check = await GuestDisk.CheckAsync(overlay, "qcow2", replayJournal: false);
        Assert.True(check.Clean, check.FsckOutput);
        Assert.Empty(check.BadFiles);
        var mine = await GuestDisk.ContentAsync(overlay, "qcow2");
        Assert.NotNull(point.Blob);
        Assert.Equal(point.Blob, mine.Blob);
        Assert.True(mine.Manifest.Count >= point.Manifest.Count, $"NEW has {mine.Manifest.Count} manifest lines, the point {point.Manifest.Count}");
        Assert.Equal(point.Manifest, mine.Manifest.Take(point.Manifest.Count));
    }

    /// <summary>No journal entry and no pin in the repository names <paramref name="domain"/> any more.</summary>
    private void AssertReleased(string domain)
    {
        var drills = Path.Combine(fixture.Config.StateDirectory, "drills");
        Assert.DoesNotContain(Directory.Exists(drills) ? Directory.EnumerateFiles(drills, "*.json") : [], f => File.ReadAllText(f).Contains(domain, StringComparison.Ordinal));
        Assert.DoesNotContain(Directory.EnumerateDirectories(Path.Combine(fixture.Repository, "groups")).Select(g => Path.Combine(g, "pins"))
            .Where(Directory.Exists).SelectMany(Directory.EnumerateFiles), f => File.ReadAllText(f).Contains(domain, StringComparison.Ordinal));
    }

    private async Task<List<string>> CatalogPointsAsync()
    {
        var (code, stdout, stderr) = await fixture.Backupd("list", "--domain", fixture.Guest.Name, "--json");
        Assert.True(code == 0, stderr);
        var root = JsonDocument.Parse(stdout).RootElement;
        var points = root.ValueKind == JsonValueKind.Array ? root : root.GetProperty("points");
        return points.EnumerateArray().Select(p => p.GetProperty("id").GetString()!).ToList();
    }

    /// <summary>Backup, prune and forget of the point are all refused; each message goes through <paramref name="expect"/>.</summary>
    private async Task AssertLockedAsync(string point, string why, Action<string> expect)
    {
        var before = await CatalogPointsAsync();
        var backup = await fixture.Backupd("backup", "--domain", fixture.Guest.Name, "--to", fixture.Repository, "--quiesce", "off");
        output.WriteLine($"backup {why}: exit {backup.ExitCode}: {backup.Stdout}{backup.Stderr}");
        Assert.NotEqual(0, backup.ExitCode);
        expect(backup.Stdout + backup.Stderr);
        var prune = await fixture.Backupd("prune");
        output.WriteLine($"prune {why}: exit {prune.ExitCode}: {prune.Stdout}{prune.Stderr}");
        Assert.NotEqual(0, prune.ExitCode);
        expect(prune.Stdout + prune.Stderr);
        var forget = await fixture.Backupd("forget", point);
        output.WriteLine($"forget {why}: exit {forget.ExitCode}: {forget.Stdout}{forget.Stderr}");
        Assert.NotEqual(0, forget.ExitCode);
        expect(forget.Stdout + forget.Stderr);
        Assert.Equal(before, await CatalogPointsAsync());
        Assert.Equal("running", await fixture.Guest.StateAsync());
    }

    [Fact]
    public async Task Instant_restore_of_the_newest_point_runs_on_the_mirror_locks_the_group_survives_kill_9_and_recover_finishes_the_pull()
    {
        var point = fixture.Points[^1];
        var content = await PointContentAsync(point);
        var name = NewName();
        var directory = Path.Combine(fixture.Guest.Directory, name);
        var overlay = Path.Combine(directory, "vda.qcow2");
        Process? process = null;
        try
        {
            var clock = Stopwatch.StartNew();
            process = BackupdProcess.StartCollecting(null, out var lines, ["--config", fixture.Config.Path, "restore", "--domain", fixture.Guest.Name,
                "--point", point, "--as-domain", name, "--instant", "--trust-saved-xml", "--images-dir", directory, "--bandwidth", "1M"]);
            while (await StateAsync(name) != "running")
            {
                Assert.False(process.HasExited, $"the restore ended before {name} ran: {string.Join('\n', lines)}");
                Assert.True(clock.Elapsed < TimeSpan.FromMinutes(2), $"{name} did not start: {string.Join('\n', lines)}");
                await Task.Delay(100);
            }
            var started = clock.Elapsed;
            // Running on an overlay straight over the repository's mirror, with the pull under way.
            var chain = await ChainAsync(overlay);
            Assert.Equal(2, chain.Count);
            Assert.StartsWith(Path.GetFullPath(fixture.Repository) + "/", chain[1], StringComparison.Ordinal);
            Assert.EndsWith("/mirror", chain[1], StringComparison.Ordinal);
            Assert.True(await PullRunningAsync(name), "no block job on vda");
            var agent = await WaitForAgentAsync(name, clock, TimeSpan.FromMinutes(3));
            output.WriteLine($"{name} running after {started.TotalSeconds:0.0} s, agent answered after {agent.TotalSeconds:0.0} s (load {File.ReadAllText("/proc/loadavg").Split(' ')[0]})");
            Assert.False(process.HasExited, $"the pull ended before the agent answered: {string.Join('\n', lines)}");
            Assert.Equal(2, (await ChainAsync(overlay)).Count);

            // Progress in status, as JSON and as text.
            var status = await fixture.Backupd("status", "--json");
            Assert.True(status.ExitCode == 0, status.Stderr);
            var run = JsonDocument.Parse(status.Stdout).RootElement.GetProperty("running").EnumerateArray()
                .Single(r => r.GetProperty("domainName").GetString() == fixture.Guest.Name);
            Assert.Equal("instant-restore", run.GetProperty("kind").GetString());
            var progressed = Stopwatch.StartNew();
            while (true)
            {
                run = JsonDocument.Parse((await fixture.Backupd("status", "--json")).Stdout).RootElement.GetProperty("running").EnumerateArray()
                    .Single(r => r.GetProperty("domainName").GetString() == fixture.Guest.Name);
                if (run.GetProperty("step").GetString()!.StartsWith("pull vda", StringComparison.Ordinal) && run.GetProperty("progressBytes").GetInt64() > 0) break;
                Assert.True(progressed.Elapsed < TimeSpan.FromMinutes(1), $"no pull progress in status: {run}");
                await Task.Delay(500);
            }
            Assert.True(run.GetProperty("progressTotal").GetInt64() >= run.GetProperty("progressBytes").GetInt64(), run.ToString());
            var text = await fixture.Backupd("status");
            Assert.Contains("instant-restore", text.Stdout, StringComparison.Ordinal);
            Assert.Contains("pull vda", text.Stdout, StringComparison.Ordinal);

            // While the pull runs: the domain's run lock and the group's lock refuse every writer.
            await AssertLockedAsync(point, "during the pull", message => Assert.Matches(@"another backupd run is working on domain|is being backed up by|is locked by its instant-restore run|in use by the instant restore", message));
            Assert.False(process.HasExited, $"the pull ended before the lock checks were done: {string.Join('\n', lines)}");

            // kill -9 of backupd mid-pull: QEMU's job goes on, and the pin in the repository still refuses every writer.
            process.Kill();
            await process.WaitForExitAsync();
            Assert.Equal("running", await StateAsync(name));
            Assert.Equal(2, (await ChainAsync(overlay)).Count);
            // (A backup names the journaled restore before it gets to the repository; prune and forget meet the pin.)
            await AssertLockedAsync(point, "after kill -9", message =>
            {
                Assert.Contains(name, message, StringComparison.Ordinal);
                Assert.Contains("backupd recover", message, StringComparison.Ordinal);
            });

            var recover = await fixture.Backupd("recover", "--json");
            output.WriteLine(recover.Stdout + recover.Stderr);
            Assert.True(recover.ExitCode == 0, $"exit {recover.ExitCode}: {recover.Stdout}{recover.Stderr}");
            Assert.Contains("resume the instant restore's block pull", recover.Stdout, StringComparison.Ordinal);

            // Standalone: no backing file, nothing of the repository in the live XML, the job gone, the point released.
            Assert.Equal([overlay], await ChainAsync(overlay));
            var live = XDocument.Parse(await Tools.Virsh("dumpxml", name));
            var sources = live.Descendants("source").Select(s => s.Attribute("file")?.Value).OfType<string>().ToList();
            Assert.Contains(overlay, sources);
            Assert.DoesNotContain(sources, s => s.StartsWith(Path.GetFullPath(fixture.Repository), StringComparison.Ordinal));
            Assert.DoesNotContain(live.Descendants("disk").Elements("backingStore"), b => b.HasElements);
            Assert.False(await PullRunningAsync(name));
            AssertReleased(name);
            Assert.NotNull(await AgentPingAsync(name));

            // The group takes backups again (the pin is gone).
            var again = await fixture.Backupd("backup", "--domain", fixture.Guest.Name, "--to", fixture.Repository, "--quiesce", "required", "--json");
            Assert.True(again.ExitCode == 0, $"backup after the instant restore exited {again.ExitCode}: {again.Stdout}{again.Stderr}");
            fixture.Points.Add(JsonDocument.Parse(again.Stdout).RootElement.GetProperty("restorePointId").GetString()!);

            await ShutdownAsync(name);
            await AssertHoldsPointAsync(overlay, content);
        }
        finally
        {
            if (process is { HasExited: false }) { process.Kill(); await process.WaitForExitAsync(); }
            process?.Dispose();
            await RemoveAsync(name, directory);
            // A failed run leaves its journal and pin: recover releases a point whose domain is gone, so the other test is not blocked.
            await fixture.Backupd("recover");
        }
    }

    [Fact]
    public async Task Instant_restore_of_an_older_point_runs_on_a_reconstructed_image_and_ends_standalone_with_that_points_data()
    {
        var point = fixture.Points[0];
        var content = await PointContentAsync(point);
        var newest = await PointContentAsync(fixture.Points[^1]);
        Assert.True(content.Manifest.Count < newest.Manifest.Count, "the oldest point should have fewer writer files than the newest");
        var name = NewName();
        var directory = Path.Combine(fixture.Guest.Directory, name);
        var overlay = Path.Combine(directory, "vda.qcow2");
        try
        {
            var (code, stdout, stderr) = await fixture.Backupd("restore", "--domain", fixture.Guest.Name, "--point", point, "--as-domain", name,
                "--instant", "--trust-saved-xml", "--images-dir", directory, "--json");
            output.WriteLine(stdout + stderr);
            Assert.True(code == 0, $"exit {code}: {stdout}{stderr}");
            var json = JsonDocument.Parse(stdout).RootElement;
            Assert.Equal("instant", json.GetProperty("mode").GetString());
            Assert.Equal("reconstructed", json.GetProperty("backing").GetString());
            Assert.Equal(point, json.GetProperty("pointId").GetString());
            Assert.True(json.GetProperty("startedAfterSeconds").GetDouble() <= json.GetProperty("standaloneAfterSeconds").GetDouble(), json.ToString());

            Assert.Equal("running", await StateAsync(name));
            Assert.Equal([overlay], await ChainAsync(overlay));
            Assert.False(Directory.Exists(Path.Combine(directory, "point")), "the reconstructed point was left behind");
            var sources = XDocument.Parse(await Tools.Virsh("dumpxml", name)).Descendants("source").Select(s => s.Attribute("file")?.Value).OfType<string>().ToList();
            Assert.DoesNotContain(sources, s => s.StartsWith(directory + "/point", StringComparison.Ordinal) || s.StartsWith(Path.GetFullPath(fixture.Repository), StringComparison.Ordinal));
            AssertReleased(name);
            await WaitForAgentAsync(name, Stopwatch.StartNew(), TimeSpan.FromMinutes(3));
            Assert.True(await KeepsWritingAsync(Path.Combine(directory, "console.log"), content.Manifest.Count + 2, TimeSpan.FromMinutes(2)), "NEW's writer does not write");

            await ShutdownAsync(name);
            await AssertHoldsPointAsync(overlay, content);
        }
        finally
        {
            await RemoveAsync(name, directory);
        }
    }

    /// <summary>NEW's writer continues from the restored manifest: a "synced N" with N past it means it boots from the point and writes.</summary>
    private static async Task<bool> KeepsWritingAsync(string console, int beyond, TimeSpan timeout)
    {
        var clock = Stopwatch.StartNew();
        while (clock.Elapsed < timeout)
        {
            if (File.Exists(console))
            {
                using var stream = new FileStream(console, FileMode.Open, FileAccess.Read, FileShare.ReadWrite);
                var matches = Regex.Matches(await new StreamReader(stream).ReadToEndAsync(), @"^synced (\d+)\r?$", RegexOptions.Multiline);
                if (matches.Count > 0 && int.Parse(matches[^1].Groups[1].Value, System.Globalization.CultureInfo.InvariantCulture) >= beyond) return true;
            }
            await Task.Delay(250);
        }
        return false;
    }
}
