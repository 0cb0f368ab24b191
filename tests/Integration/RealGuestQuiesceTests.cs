using System.Diagnostics;
using System.Text.Json;
using Backupd.Integration.Fixtures;

namespace Backupd.Integration;

/// <summary>One real guest for the class (boot once): its writer runs throughout, every test leaves its agent running.</summary>
public sealed class RealGuestFixture : IAsyncLifetime
{
    public TestGuest Guest { get; private set; } = null!;
    public TempConfig Config { get; } = new("Host=/nonexistent");
    public string Repository => Path.Combine(Guest.Directory, "repo");

    public async Task InitializeAsync() => Guest = await TestGuest.BootAsync();

    public async Task DisposeAsync()
    {
        if (Guest is not null) await Guest.DisposeAsync();
        Config.Dispose();
    }

    /// <summary>`backupd backup --no-catalog --json` of the guest; returns the JSON (or the error object), the exit code, stderr and the time it took.</summary>
    public async Task<(int Code, JsonElement Json, string Stderr, TimeSpan Took)> BackupAsync(string quiesce, IDictionary<string, string>? environment = null)
    {
        var clock = Stopwatch.StartNew();
        var (code, stdout, stderr) = await BackupdProcess.RunAsync(environment,
            ["--config", Config.Path, "backup", "--domain", Guest.Name, "--to", Repository, "--no-catalog", "--json", "--quiesce", quiesce]);
        var took = clock.Elapsed;
        return (code, JsonDocument.Parse(stdout).RootElement, stderr, took);
    }

    public string Mirror => Path.Combine(Repository, "groups", Uuid, "files", "vda.0", "mirror");

    private string? uuid;
    private string Uuid => uuid ??= Tools.Virsh("domuuid", Guest.Name).GetAwaiter().GetResult().Trim();

    /// <summary>Overlays the run left beside the data disk (there must be none).</summary>
    public int OverlaysLeft() => Directory.EnumerateFiles(Guest.Directory).Count(f => Path.GetFileName(f).Contains(".backupd-", StringComparison.Ordinal));
}

/// <summary>Issue 11 with a real Linux guest and a real qemu-ga: quiesced and crash-consistent points, a killed and a hung agent.</summary>
[Trait("Category", "Integration")]
public sealed class RealGuestQuiesceTests(RealGuestFixture fixture) : IClassFixture<RealGuestFixture>
{
    private TestGuest Guest => fixture.Guest;

    [Fact]
    public async Task A_quiesced_backup_while_writing_is_application_consistent_clean_and_every_manifest_file_intact()
    {
        var before = Guest.Synced();
        var (code, json, stderr, _) = await fixture.BackupAsync("required");

        Assert.True(code == 0, $"exit {code}: {stderr}{json}");
        Assert.Equal("application-consistent", json.GetProperty("consistency").GetString());
        Assert.Equal("quiesced", json.GetProperty("quiesce").GetProperty("outcome").GetString());
        var check = await GuestDisk.CheckAsync(fixture.Mirror, "qcow2", replayJournal: false);
        Assert.True(check.Clean, check.FsckOutput); // no journal replay needed: the freeze flushed it
        Assert.True(check.ManifestFiles >= before, $"{check.ManifestFiles} manifest files, {before} were synced before the backup");
        Assert.Empty(check.BadFiles);
        Assert.True(await Guest.KeepsWritingAsync(3, TimeSpan.FromSeconds(60)), "the writer stopped after the quiesced backup");
        Assert.Equal("thawed", await Guest.FreezeStatusAsync());
    }

    [Fact]
    public async Task Quiesce_off_is_crash_consistent_and_clean_after_journal_replay()
    {
        await Guest.WaitForSyncedAsync(Guest.Synced() + 2, TimeSpan.FromSeconds(60));
        var (code, json, stderr, _) = await fixture.BackupAsync("off");

        Assert.True(code == 0, $"exit {code}: {stderr}{json}");
        Assert.Equal("crash-consistent", json.GetProperty("consistency").GetString());
        var check = await GuestDisk.CheckAsync(fixture.Mirror, "qcow2", replayJournal: true);
        Assert.True(check.Clean, check.FsckOutput);
        Assert.True(check.ManifestFiles > 0);
        Assert.Empty(check.BadFiles);
    }

    [Fact]
    public async Task Agent_killed_required_refuses_before_any_snapshot_and_preferred_is_crash_consistent()
    {
        await Guest.ControlAsync("agent-kill");
        try
        {
            var required = await fixture.BackupAsync("required");
            Assert.NotEqual(0, required.Code);
            Assert.Contains("quiesce 'required'", required.Json.GetProperty("error").GetString(), StringComparison.Ordinal);
            Assert.Contains("nothing was snapshotted", required.Json.GetProperty("error").GetString(), StringComparison.Ordinal);
            Assert.Equal(0, fixture.OverlaysLeft());

            var preferred = await fixture.BackupAsync("preferred");
            Assert.True(preferred.Code == 0, $"exit {preferred.Code}: {preferred.Stderr}{preferred.Json}");
            Assert.Equal("crash-consistent", preferred.Json.GetProperty("consistency").GetString());
            var check = await GuestDisk.CheckAsync(fixture.Mirror, "qcow2", replayJournal: true);
            Assert.True(check.Clean, check.FsckOutput);
            Assert.Empty(check.BadFiles);
        }
        finally
        {
            await Guest.ControlAsync("agent-start");
        }
    }

    [Fact]
    public async Task Agent_hung_required_fails_fast_preferred_falls_back_fast_and_the_guest_is_not_left_frozen()
    {
        Assert.NotNull(await Guest.AgentAsync("""{"execute":"guest-ping"}""")); // a live agent to start with
        await Guest.ControlAsync("agent-stop"); // qemu-ga SIGSTOPped in the guest: the channel stays connected
        try
        {
            Assert.Contains("state='connected'", await Tools.Virsh("dumpxml", Guest.Name), StringComparison.Ordinal);

            var required = await fixture.BackupAsync("required");
            Assert.NotEqual(0, required.Code);
            Assert.Contains("did not answer a guest-ping", required.Json.GetProperty("error").GetString(), StringComparison.Ordinal);
            Assert.True(required.Took < TimeSpan.FromSeconds(45), $"required took {required.Took} with a hung agent");

            var preferred = await fixture.BackupAsync("preferred");
            Assert.True(preferred.Code == 0, $"exit {preferred.Code}: {preferred.Stderr}{preferred.Json}");
            Assert.Equal("crash-consistent", preferred.Json.GetProperty("consistency").GetString());
            Assert.Contains("guest-ping", preferred.Json.GetProperty("quiesce").GetProperty("reason").GetString(), StringComparison.Ordinal);
            Assert.True(preferred.Took < TimeSpan.FromSeconds(60), $"preferred took {preferred.Took} with a hung agent");
            Console.WriteLine($"hung agent: required gave up in {required.Took.TotalSeconds:0.0} s, preferred finished in {preferred.Took.TotalSeconds:0.0} s");
        }
        finally
        {
            await Guest.ControlAsync("agent-cont");
        }
        // The agent wakes with the runs' guest-syncs queued: nothing of them may freeze the guest.
        Assert.True(await Guest.KeepsWritingAsync(5, TimeSpan.FromSeconds(60)), "the writer stopped after the agent woke: guest frozen?");
        Assert.Equal("thawed", await Guest.FreezeStatusAsync());
        Assert.Equal(0, fixture.OverlaysLeft());
    }
}
