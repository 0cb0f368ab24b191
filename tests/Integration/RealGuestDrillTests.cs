using System.Diagnostics;
using System.Text.Json;
using Backupd.Integration.Fixtures;
using Backupd.Storage.Catalog;
using Xunit.Abstractions;

namespace Backupd.Integration;

/// <summary>A real guest, a migrated catalog and one quiesced point of the guest in a repository, shared by the drill tests.</summary>
public sealed class DrillFixture : IAsyncLifetime
{
    public PostgresDatabase Database { get; } = new();
    public TestGuest Guest { get; private set; } = null!;
    public TempConfig Config { get; private set; } = null!;
    public string Repository => Path.Combine(Guest.Directory, "repo");
    public string Scratch => Path.Combine(Guest.Directory, "drills");
    public string PointId { get; private set; } = "";

    public async Task InitializeAsync()
    {
        await Database.InitializeAsync();
        await CatalogMigrator.MigrateAsync(Database.ConnectionString, CancellationToken.None);
        Config = new TempConfig(Database.ConnectionString);
        Guest = await TestGuest.BootAsync();
        await Guest.WaitForSyncedAsync(3, TimeSpan.FromMinutes(2));
        var (code, stdout, stderr) = await Backupd("backup", "--domain", Guest.Name, "--to", Repository, "--quiesce", "required", "--json");
        if (code != 0) throw new InvalidOperationException($"backup exited {code}: {stdout}{stderr}");
        var json = JsonDocument.Parse(stdout).RootElement;
        if (json.GetProperty("consistency").GetString() != "application-consistent") throw new InvalidOperationException($"the point is not quiesced: {stdout}");
        PointId = json.GetProperty("restorePointId").GetString()!;
    }

    public Task<(int ExitCode, string Stdout, string Stderr)> Backupd(params string[] args) => BackupdProcess.RunAsync(null, ["--config", Config.Path, .. args]);

    /// <summary>Every domain named like a drill's (there must be none after a drill or a recover).</summary>
    public static async Task<IReadOnlyList<string>> DrillDomainsAsync() =>
        (await Tools.Virsh("list", "--all", "--name")).Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries)
            .Where(n => n.StartsWith("backupd-drill-", StringComparison.Ordinal)).ToList();

    public async Task DisposeAsync()
    {
        if (Guest is not null) await Guest.DisposeAsync();
        Config?.Dispose();
        await Database.DisposeAsync();
    }
}

/// <summary>Issue 11 item 3: restore drills of a real guest's point (boot under TCG, agent, check command, RTO, teardown, recover).</summary>
[Trait("Category", "Integration")]
public sealed class RealGuestDrillTests(DrillFixture fixture, ITestOutputHelper output) : IClassFixture<DrillFixture>
{
    // The agent starts before /data is mounted: wait for the mount, then look at the restored writer's manifest.
    private const string Check = "for i in 1 2 3 4 5 6 7 8 9 10; do grep -q ' /data ' /proc/mounts && break; sleep 0.5; done; test -s /data/manifest && echo manifest $(wc -l < /data/manifest)";

    private async Task<(int Code, JsonElement Json, string Stderr)> DrillAsync(params string[] extra)
    {
        var (code, stdout, stderr) = await fixture.Backupd(["drill", "--domain", fixture.Guest.Name, "--point", fixture.PointId, "--trust-saved-xml",
            "--scratch-dir", fixture.Scratch, "--timeout", "3m", "--json", .. extra]);
        output.WriteLine(stdout + stderr);
        return (code, JsonDocument.Parse(stdout).RootElement, stderr);
    }

    private async Task<JsonElement> DrillRunAsync()
    {
        var (code, stdout, stderr) = await fixture.Backupd("status", "--json");
        Assert.True(code == 0, stderr);
        var last = JsonDocument.Parse(stdout).RootElement.GetProperty("lastPerDomain").EnumerateArray().Single(r => r.GetProperty("domainName").GetString() == fixture.Guest.Name);
        return last;
    }

    private void AssertNothingLeft()
    {
        Assert.Empty(DrillFixture.DrillDomainsAsync().GetAwaiter().GetResult());
        Assert.True(!Directory.Exists(fixture.Scratch) || !Directory.EnumerateFileSystemEntries(fixture.Scratch).Any(), "the drill left files in its scratch directory");
        Assert.Empty(Directory.Exists(Path.Combine(fixture.Config.StateDirectory, "drills")) ? Directory.EnumerateFiles(Path.Combine(fixture.Config.StateDirectory, "drills"), "*.json") : []);
    }

    [Fact]
    public async Task A_drill_of_a_quiesced_point_boots_the_agent_answers_the_check_passes_the_rto_is_recorded_and_nothing_is_left()
    {
        var (code, json, stderr) = await DrillAsync("--check", Check);

        Assert.True(code == 0, $"exit {code}: {json}{stderr}");
        Assert.True(json.GetProperty("passed").GetBoolean());
        Assert.Equal(0, json.GetProperty("checkExitCode").GetInt32());
        Assert.StartsWith("manifest ", json.GetProperty("checkOutput").GetString()!.Trim());
        var rto = json.GetProperty("rtoSeconds").GetDouble();
        var agent = json.GetProperty("agentAnsweredAfterSeconds").GetDouble();
        Assert.InRange(agent, 0.1, 180);
        Assert.True(rto >= agent, $"RTO {rto} s is before the agent answered ({agent} s)");
        output.WriteLine($"drill RTO {rto:0.0} s, agent answered after {agent:0.0} s, backing {json.GetProperty("backing").GetString()}; " +
            $"the original guest booted to its first synced file in {fixture.Guest.BootTime.TotalSeconds:0.0} s (load {File.ReadAllText("/proc/loadavg").Split(' ')[0]})");
        AssertNothingLeft();
        // The original keeps running and writing.
        Assert.Equal("running", await fixture.Guest.StateAsync());
        Assert.True(await fixture.Guest.KeepsWritingAsync(2, TimeSpan.FromSeconds(60)));

        var run = await DrillRunAsync();
        Assert.Equal("drill", run.GetProperty("kind").GetString());
        Assert.Equal("succeeded", run.GetProperty("state").GetString());
        Assert.Equal(fixture.PointId, run.GetProperty("pointId").GetString());
        Assert.True(run.GetProperty("rto").ValueKind == JsonValueKind.String, run.ToString());
        var (listCode, list, _) = await fixture.Backupd("list", "--domain", fixture.Guest.Name);
        Assert.Equal(0, listCode);
        Assert.Contains("passed", list, StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_drill_whose_check_fails_is_recorded_failed_and_leaves_nothing()
    {
        var (code, json, _) = await DrillAsync("--check", "echo broken; exit 3");

        Assert.Equal(1, code);
        Assert.False(json.GetProperty("passed").GetBoolean());
        Assert.Equal(3, json.GetProperty("checkExitCode").GetInt32());
        Assert.Contains("exited 3", json.GetProperty("failure").GetString(), StringComparison.Ordinal);
        AssertNothingLeft();
        var run = await DrillRunAsync();
        Assert.Equal("failed", run.GetProperty("state").GetString());
        Assert.Contains("exited 3", run.GetProperty("error").GetString(), StringComparison.Ordinal);
    }

    [Fact]
    public async Task Kill_9_mid_drill_then_recover_removes_the_drill_domain_and_its_overlays()
    {
        using var process = BackupdProcess.StartCollecting(null, out var lines, ["--config", fixture.Config.Path, "drill", "--domain", fixture.Guest.Name,
            "--trust-saved-xml", "--scratch-dir", fixture.Scratch, "--timeout", "3m", "--check", "sleep 600"]);
        var clock = Stopwatch.StartNew();
        while ((await DrillFixture.DrillDomainsAsync()).Count == 0)
        {
            Assert.False(process.HasExited, $"the drill ended before its domain appeared: {string.Join('\n', lines)}");
            Assert.True(clock.Elapsed < TimeSpan.FromMinutes(2), "no drill domain appeared");
            await Task.Delay(100);
        }
        process.Kill();
        await process.WaitForExitAsync();
        Assert.NotEmpty(await DrillFixture.DrillDomainsAsync()); // the killed run left it running

        var (code, stdout, stderr) = await fixture.Backupd("recover", "--json");
        output.WriteLine(stdout + stderr);
        Assert.True(code == 0, $"exit {code}: {stdout}{stderr}");
        Assert.Contains("remove the drill domain", stdout, StringComparison.Ordinal);
        AssertNothingLeft();
        var run = await DrillRunAsync();
        Assert.Equal("interrupted", run.GetProperty("state").GetString());
    }
}
