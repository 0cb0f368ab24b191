using System.Text.Json;
using Backupd.Daemon.Workflow;
using Backupd.Integration.Fixtures;

namespace Backupd.Integration;

/// <summary>
/// `backupd backup --domain` and `backupd recover` as a child process: exit codes, messages, and kills at each step.
/// The configuration names a real catalog, so every backup here takes the default path (through the catalog).
/// </summary>
[Trait("Category", "Integration")]
public sealed class LiveBackupProcessTests(PostgresDatabase database) : IClassFixture<PostgresDatabase>, IDisposable
{
    private const long MiB = TestVm.MiB;
    private readonly TempConfig config = new(database.ConnectionString);
    private string Repository => Path.Combine(config.Directory, "repo");

    public void Dispose() => config.Dispose();

    private Task<(int ExitCode, string Stdout, string Stderr)> Backupd(IDictionary<string, string>? env, params string[] args) =>
        BackupdProcess.RunAsync(env, ["--config", config.Path, .. args]);

    private static IEnumerable<string> OverlayFiles(TestVm vm) => Directory.EnumerateFiles(vm.Directory).Where(OverlayNaming.IsOverlay);

    /// <summary>
    /// `backupd recover --domain VM --json` until it skips nothing: recovery skips a domain another backupd process
    /// holds (daemons other tests start recover the whole host at start-up). Returns every output.
    /// </summary>
    private async Task<string> RecoverAsync(TestVm vm, params string[] extra)
    {
        var outputs = new List<string>();
        for (var attempt = 0; attempt < 30; attempt++)
        {
            var run = await Backupd(null, ["recover", "--domain", vm.Name, "--json", .. extra]);
            Assert.True(run.ExitCode == 0, $"recover exited {run.ExitCode}: {run.Stderr}");
            outputs.Add(run.Stdout);
            if (!run.Stdout.Contains("skipped:", StringComparison.Ordinal)) break;
            await Task.Delay(1000);
        }
        return string.Join("\n", outputs);
    }

    private static async Task AssertOnBaseAsync(TestVm vm, params string[] targets)
    {
        foreach (var t in targets)
        {
            Assert.Equal(vm.Disk(t).Path, await vm.ActiveSourceAsync(t));
            Assert.Equal(vm.Disk(t).Path, await vm.ActiveSourceAsync(t, inactive: true));
            Assert.DoesNotContain(".backupd-", await vm.LiveXmlAsync(), StringComparison.Ordinal);
            Assert.DoesNotContain(".backupd-", await vm.InactiveXmlAsync(), StringComparison.Ordinal);
        }
        Assert.Empty(OverlayFiles(vm));
    }

    [Theory]
    [InlineData("after-journal")]
    [InlineData("after-snapshot")]
    [InlineData("mid-copy")]
    [InlineData("after-copy")]
    [InlineData("mid-commit")]
    [InlineData("after-pivot")]
    public async Task Killed_at_each_step_then_recover_puts_the_vm_back_on_its_base_without_losing_a_write(string step)
    {
        await using var vm = await TestVm.CreateAsync(new DiskSpec("vda"), new DiskSpec("vdb", Format: "raw"));
        await vm.StartAsync();
        await vm.WriteAsGuestAsync("vda", 2 * MiB, 0xa1, MiB);

        var killed = await Backupd(new Dictionary<string, string> { [Faults.EnvironmentVariable] = $"{step}:kill" },
            "backup", "--domain", vm.Name, "--to", Repository, "--json");
        Assert.Equal(137, killed.ExitCode); // SIGKILL

        // The guest keeps writing while backupd is dead (onto the overlay if it is on one).
        await vm.WriteAsGuestAsync("vda", 4 * MiB, 0xb2, MiB);
        await vm.WriteAsGuestAsync("vdb", 4 * MiB, 0xc3, MiB);

        await RecoverAsync(vm);

        Assert.Equal("running", await vm.StateAsync());
        await AssertOnBaseAsync(vm, "vda", "vdb");
        Assert.True(await vm.GuestReadMatchesAsync("vda", 2 * MiB, MiB, 0xa1));
        Assert.True(await vm.GuestReadMatchesAsync("vda", 4 * MiB, MiB, 0xb2));
        Assert.True(await vm.GuestReadMatchesAsync("vdb", 4 * MiB, MiB, 0xc3));
        await vm.DestroyAsync();
        Assert.True(await TestVm.ImageMatchesAsync(vm.Disk("vda").Path, "qcow2", 4 * MiB, MiB, 0xb2));
        Assert.True(await TestVm.ImageMatchesAsync(vm.Disk("vdb").Path, "raw", 4 * MiB, MiB, 0xc3));

        // Nothing left for a second recovery, and the next backup is not refused.
        await vm.StartAsync();
        var again = await Backupd(null, "backup", "--domain", vm.Name, "--to", Repository, "--json");
        Assert.True(again.ExitCode == 0, $"backup after recovery exited {again.ExitCode}: {again.Stderr}");
        await AssertOnBaseAsync(vm, "vda", "vdb");
    }

    [Fact]
    public async Task A_shut_off_domain_left_on_an_overlay_is_committed_offline_by_recover()
    {
        await using var vm = await TestVm.CreateAsync(new DiskSpec("vda"));
        await vm.StartAsync();
        var killed = await Backupd(new Dictionary<string, string> { [Faults.EnvironmentVariable] = "after-copy:kill" },
            "backup", "--domain", vm.Name, "--to", Repository);
        Assert.Equal(137, killed.ExitCode);
        await vm.WriteAsGuestAsync("vda", 6 * MiB, 0xd4, MiB); // lands in the overlay
        await vm.DestroyAsync();
        Assert.Contains(".backupd-", await vm.InactiveXmlAsync(), StringComparison.Ordinal);

        await RecoverAsync(vm); // (a daemon starting elsewhere on the host may be the one that does the offline commit)

        Assert.Equal("shut off", await vm.StateAsync());
        await AssertOnBaseAsync(vm, "vda");
        Assert.True(await TestVm.ImageMatchesAsync(vm.Disk("vda").Path, "qcow2", 6 * MiB, MiB, 0xd4));
    }

    [Fact]
    public async Task A_transient_domain_that_is_gone_has_its_overlay_committed_through_the_journal()
    {
        await using var vm = await TestVm.CreateAsync(persistent: false, new DiskSpec("vda"));
        var killed = await Backupd(new Dictionary<string, string> { [Faults.EnvironmentVariable] = "after-copy:kill" },
            "backup", "--domain", vm.Name, "--to", Repository);
        Assert.Equal(137, killed.ExitCode);
        await vm.WriteAsGuestAsync("vda", 6 * MiB, 0xe5, MiB);
        await vm.DestroyAsync(); // a transient domain is gone once stopped
        Assert.Single(OverlayFiles(vm));

        var recover = await RecoverAsync(vm);

        // Only this test's journal knows the overlay: no other recovery on the host can have done it.
        Assert.Contains("domain is gone", recover, StringComparison.Ordinal);
        Assert.Empty(OverlayFiles(vm));
        Assert.True(await TestVm.ImageMatchesAsync(vm.Disk("vda").Path, "qcow2", 6 * MiB, MiB, 0xe5));
    }

    /// <summary>`recover --domain` touches that domain only; plain `recover` takes every domain. The table says "done" for what it did.</summary>
    [Fact]
    public async Task Recover_domain_merges_back_only_that_domain_and_plain_recover_the_other()
    {
        await using var mine = await TestVm.CreateAsync(new DiskSpec("vda"));
        await using var other = await TestVm.CreateAsync(new DiskSpec("vda"));
        foreach (var vm in new[] { mine, other })
        {
            await vm.StartAsync();
            var killed = await Backupd(new Dictionary<string, string> { [Faults.EnvironmentVariable] = "after-copy:kill" },
                "backup", "--domain", vm.Name, "--to", Repository);
            Assert.Equal(137, killed.ExitCode);
            await vm.WriteAsGuestAsync("vda", 6 * MiB, 0x3e, MiB); // lands in the overlay
        }
        var otherOverlay = Assert.Single(OverlayFiles(other));

        var recover = await Backupd(null, "recover", "--domain", mine.Name);

        Assert.True(recover.ExitCode == 0, recover.Stderr);
        Assert.Contains("done", recover.Stdout, StringComparison.Ordinal);
        Assert.DoesNotContain("would do", recover.Stdout, StringComparison.Ordinal);
        Assert.DoesNotContain(other.Name, recover.Stdout, StringComparison.Ordinal);
        await AssertOnBaseAsync(mine, "vda");
        Assert.Equal(otherOverlay, await other.ActiveSourceAsync("vda"));
        Assert.True(File.Exists(otherOverlay));

        var dry = await Backupd(null, "recover", "--dry-run");
        Assert.Contains("would do", dry.Stdout, StringComparison.Ordinal);
        Assert.Equal(otherOverlay, await other.ActiveSourceAsync("vda"));

        string all = "";
        for (var attempt = 0; attempt < 30 && OverlayFiles(other).Any(); attempt++)
        {
            var plain = await Backupd(null, "recover", "--json");
            Assert.True(plain.ExitCode == 0, plain.Stderr);
            all += plain.Stdout;
            if (OverlayFiles(other).Any()) await Task.Delay(1000); // another backupd on the host held it
        }
        Assert.Contains(other.Name, all, StringComparison.Ordinal);
        await AssertOnBaseAsync(other, "vda");
        Assert.True(await other.GuestReadMatchesAsync("vda", 6 * MiB, MiB, 0x3e));
        Assert.True(await mine.GuestReadMatchesAsync("vda", 6 * MiB, MiB, 0x3e));
    }

    [Fact]
    public async Task Recover_domain_of_an_unknown_domain_exits_3_and_changes_nothing()
    {
        var run = await Backupd(null, "recover", "--domain", "bkd-no-such-" + Guid.NewGuid().ToString("N")[..8], "--json");
        Assert.Equal(3, run.ExitCode);
        Assert.Equal(3, JsonDocument.Parse(run.Stdout).RootElement.GetProperty("exitCode").GetInt32());
        Assert.Contains("no domain", run.Stderr, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Quiesce_required_without_a_guest_agent_fails_before_any_snapshot()
    {
        await using var vm = await TestVm.CreateAsync(new DiskSpec("vda"));
        await vm.StartAsync();
        var before = await vm.LiveXmlAsync();

        var run = await Backupd(null, "backup", "--domain", vm.Name, "--to", Repository, "--quiesce", "required");

        Assert.Equal(1, run.ExitCode);
        Assert.Contains("guest agent", run.Stderr, StringComparison.Ordinal);
        Assert.Equal(before, await vm.LiveXmlAsync());
        Assert.Empty(OverlayFiles(vm));
    }

    [Fact]
    public async Task An_unreachable_catalog_fails_before_the_vm_is_touched_naming_the_server_and_the_escape()
    {
        await using var vm = await TestVm.CreateAsync(new DiskSpec("vda"));
        await vm.StartAsync();
        var before = await vm.LiveXmlAsync();
        // Nothing listens on port 1.
        using var down = new TempConfig("Host=127.0.0.1;Port=1;Username=backupd;Password=s3cret-pw;Database=bkd_down;Timeout=3");

        var run = await BackupdProcess.RunAsync(null, ["--config", down.Path, "backup", "--domain", vm.Name, "--to", Path.Combine(down.Directory, "repo")]);

        Assert.Equal(1, run.ExitCode);
        Assert.Contains("127.0.0.1:1 database 'bkd_down'", run.Stderr, StringComparison.Ordinal);
        Assert.Contains("--no-catalog", run.Stderr, StringComparison.Ordinal);
        Assert.DoesNotContain("s3cret-pw", run.Stderr + run.Stdout, StringComparison.Ordinal);
        Assert.Equal(before, await vm.LiveXmlAsync());
        Assert.Empty(OverlayFiles(vm));
        Assert.False(Directory.Exists(Path.Combine(down.Directory, "repo")));

        // The escape: the same request with --no-catalog backs up into the repository only, and says so.
        var escaped = await BackupdProcess.RunAsync(null, ["--config", down.Path, "backup", "--domain", vm.Name, "--to", Path.Combine(down.Directory, "repo"), "--no-catalog", "--json"]);
        Assert.True(escaped.ExitCode == 0, escaped.Stderr);
        Assert.Contains("not recorded in the catalog", escaped.Stderr, StringComparison.Ordinal);
        using var json = JsonDocument.Parse(escaped.Stdout);
        Assert.Equal("succeeded", json.RootElement.GetProperty("outcome").GetString());
        Assert.False(json.RootElement.TryGetProperty("catalogRunId", out _));
    }

    [Fact]
    public async Task Json_result_reports_times_consistency_and_files()
    {
        await using var vm = await TestVm.CreateAsync(new DiskSpec("vda"));
        await vm.StartAsync();

        var run = await Backupd(null, "backup", "--domain", vm.Name, "--to", Repository, "--json", "--quiesce", "preferred");

        Assert.True(run.ExitCode == 0, run.Stderr);
        using var json = JsonDocument.Parse(run.Stdout);
        var root = json.RootElement;
        Assert.Equal("succeeded", root.GetProperty("outcome").GetString());
        Assert.True(root.GetProperty("catalogRunId").GetInt64() > 0); // the default path records the run
        Assert.Equal("crash-consistent", root.GetProperty("consistency").GetString());
        Assert.True(root.GetProperty("overlayLifetime").GetDouble() > 0);
        Assert.True(root.GetProperty("copyTime").GetDouble() > 0);
        var disk = root.GetProperty("disks")[0];
        Assert.Equal("vda.0", disk.GetProperty("files")[0].GetProperty("fileKey").GetString());
        Assert.True(disk.GetProperty("bytesRead").GetInt64() > 0);
    }

    [Fact]
    public async Task Human_output_uses_the_json_words_not_enum_names_both_with_and_without_the_catalog()
    {
        await using var vm = await TestVm.CreateAsync(new DiskSpec("vda"));
        await vm.StartAsync();

        var recorded = await Backupd(null, "backup", "--domain", vm.Name, "--to", Repository);
        var repositoryOnly = await Backupd(null, "backup", "--domain", vm.Name, "--to", Repository, "--no-catalog");

        foreach (var run in new[] { recorded, repositoryOnly })
        {
            Assert.True(run.ExitCode == 0, run.Stderr);
            Assert.Contains("succeeded, crash-consistent", run.Stdout, StringComparison.Ordinal);
            Assert.DoesNotContain("CrashConsistent", run.Stdout, StringComparison.Ordinal);
            Assert.DoesNotContain("Succeeded", run.Stdout, StringComparison.Ordinal);
        }
        Assert.Contains("catalog run", recorded.Stdout, StringComparison.Ordinal);
        Assert.Contains("recorded in the catalog", recorded.Stdout, StringComparison.Ordinal);
        Assert.Contains("not recorded in the catalog", repositoryOnly.Stderr, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Exclude_disk_leaves_those_targets_out_of_the_snapshot_and_the_restore_point()
    {
        await using var vm = await TestVm.CreateAsync(new DiskSpec("vda"), new DiskSpec("vdb", Format: "raw"), new DiskSpec("vdc"));
        await vm.StartAsync();

        var run = await Backupd(null, "backup", "--domain", vm.Name, "--to", Repository, "--json",
            "--exclude-disk", "vdb", "--exclude-disk", "vdc");

        Assert.True(run.ExitCode == 0, run.Stderr);
        using var json = JsonDocument.Parse(run.Stdout);
        var root = json.RootElement;
        Assert.Equal("succeeded", root.GetProperty("outcome").GetString());
        var disk = Assert.Single(root.GetProperty("disks").EnumerateArray());
        Assert.Equal("vda", disk.GetProperty("target").GetString());
        var skipped = root.GetProperty("skipped").EnumerateArray()
            .ToDictionary(e => e.GetProperty("target").GetString()!, e => e.GetProperty("reason").GetString());
        Assert.Equal(["vdb", "vdc"], skipped.Keys.Order());
        Assert.All(skipped.Values, r => Assert.Equal("excluded by request", r));
        using var repository = Storage.Repository.BackupRepository.Open(Repository);
        var point = repository.FindPoint(root.GetProperty("restorePointId").GetString()!)!;
        Assert.Equal(["vda.0"], point.Files.Select(f => f.FileKey));
        await AssertOnBaseAsync(vm, "vda", "vdb", "vdc");
    }

    public static TheoryData<string, int, string> BadRequests => new()
    {
        { "unknown-excluded-disk", 2, "unknown disk target 'vdy'" },
        { "every-disk-excluded", 2, "nothing to back up" },
        { "unknown-domain", 3, "does not exist" },
        { "unwritable-repository", 2, "not writable" },
        { "unknown-disk", 2, "unknown disk target 'vdz'" },
        { "missing-to", 2, "--to" },
    };

    [Theory]
    [MemberData(nameof(BadRequests))]
    public async Task Bad_requests_fail_with_a_clear_message_and_exit_code_and_leave_the_vm_untouched(string problem, int exitCode, string message)
    {
        await using var vm = await TestVm.CreateAsync(new DiskSpec("vda"));
        await vm.StartAsync();
        var before = await vm.LiveXmlAsync();
        var args = problem switch
        {
            "unknown-domain" => new[] { "backup", "--domain", "bkd-no-such-domain", "--to", Repository },
            // Below a regular file: cannot be created even by root.
            "unwritable-repository" => ["backup", "--domain", vm.Name, "--to", Path.Combine(config.Path, "repo")],
            "unknown-disk" => ["backup", "--domain", vm.Name, "--to", Repository, "--disk", "vdz"],
            "unknown-excluded-disk" => ["backup", "--domain", vm.Name, "--to", Repository, "--exclude-disk", "vdy"],
            "every-disk-excluded" => ["backup", "--domain", vm.Name, "--to", Repository, "--exclude-disk", "vda"],
            _ => ["backup", "--domain", vm.Name],
        };

        var run = await Backupd(null, args);

        Assert.Equal(exitCode, run.ExitCode);
        Assert.Contains(message, run.Stderr, StringComparison.Ordinal);
        Assert.Equal(before, await vm.LiveXmlAsync());
        Assert.Empty(OverlayFiles(vm));
        Assert.False(Directory.Exists(Path.Combine(config.StateDirectory, "journal")) &&
            Directory.EnumerateFiles(Path.Combine(config.StateDirectory, "journal"), "*.json").Any());
    }
}

/// <summary>SIGTERM during a backup. Repository-only (--no-catalog): the test is about the overlay, not the records.</summary>
[Trait("Category", "Integration")]
public sealed class LiveBackupSignalTests : IDisposable
{
    private readonly TempConfig config = new("Host=127.0.0.1;Database=unused");

    public void Dispose() => config.Dispose();

    [Fact]
    public async Task Sigterm_during_the_copy_stops_the_copy_but_still_merges_the_overlay_back()
    {
        // Big enough that the copy takes a while: 512 MiB of data.
        await using var vm = await TestVm.CreateAsync(new DiskSpec("vda", SizeBytes: 512 * TestVm.MiB, FillPattern: null));
        await TestVm.WritePatternAsync(vm.Disk("vda").Path, "qcow2", 0, 512 * TestVm.MiB, 0x6b);
        await vm.StartAsync();
        // The run stops itself (SIGSTOP) at its first progress report: SIGTERM is then sent while the copy is
        // known to be under way, whatever the load (a constant 512 MiB copies in well under a second, so a
        // SIGTERM sent when the overlay appeared could land after the copy: the run then rightly succeeded).
        using var process = System.Diagnostics.Process.Start(BackupdProcess.StartInfo(
            new Dictionary<string, string> { [Backupd.Daemon.Workflow.Faults.EnvironmentVariable] = $"{Backupd.Daemon.Workflow.Faults.MidCopy}:stop" },
            "--config", config.Path, "backup", "--domain", vm.Name, "--to", Path.Combine(config.Directory, "repo"), "--json", "--no-catalog"))!;
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = process.StandardError.ReadToEndAsync();
        var deadline = DateTime.UtcNow.AddSeconds(120);
        while (!BackupdProcess.IsStopped(process.Id))
        {
            if (DateTime.UtcNow > deadline || process.HasExited) Assert.Fail($"backupd never stopped mid-copy: {await stderr}");
            await Task.Delay(20);
        }
        Assert.Contains(Directory.EnumerateFiles(vm.Directory), OverlayNaming.IsOverlay);

        // Pending while stopped, delivered on SIGCONT.
        var pid = process.Id.ToString(System.Globalization.CultureInfo.InvariantCulture);
        await Tools.RunAsync("kill", "-TERM", pid);
        await Tools.RunAsync("kill", "-CONT", pid);
        await process.WaitForExitAsync();

        Assert.Equal(1, process.ExitCode);
        Assert.Contains("SIGTERM", await stderr, StringComparison.Ordinal);
        using var json = JsonDocument.Parse(await stdout);
        Assert.Equal("failed", json.RootElement.GetProperty("outcome").GetString());
        Assert.Contains("canceled", json.RootElement.GetProperty("error").GetString(), StringComparison.Ordinal);
        Assert.Equal(vm.Disk("vda").Path, await vm.ActiveSourceAsync("vda"));
        Assert.DoesNotContain(Directory.EnumerateFiles(vm.Directory), OverlayNaming.IsOverlay);
        Assert.Equal("running", await vm.StateAsync());
    }
}
