using System.Text.Json;
using Backupd.Daemon.Chains;
using Backupd.Daemon.Workflow;
using Backupd.Integration.Fixtures;
using Npgsql;

namespace Backupd.Integration;

/// <summary>
/// `backupd chain show/shorten`, `backupd move-disk` and `backupd recover` as child processes against real libvirtd,
/// QEMU and the test catalog: linked clones on one template, kill -9 at each step, JSON output, catalog runs.
/// </summary>
[Trait("Category", "Integration")]
public sealed class ChainProcessTests(PostgresDatabase database) : IClassFixture<PostgresDatabase>, IDisposable
{
    private const long MiB = TestVm.MiB;
    private readonly TempConfig config = new(database.ConnectionString);

    public void Dispose() => config.Dispose();

    private Task<(int ExitCode, string Stdout, string Stderr)> Backupd(IDictionary<string, string>? env, params string[] args) =>
        BackupdProcess.RunAsync(env, ["--config", config.Path, .. args]);

    private static Dictionary<string, string> Kill(string step) => new() { [Faults.EnvironmentVariable] = $"{step}:kill" };

    private async Task<(string Kind, string State)> CatalogRunAsync(long runId)
    {
        await using var connection = new NpgsqlConnection(database.ConnectionString);
        await connection.OpenAsync();
        await using var command = new NpgsqlCommand("select kind, state from runs where id = @id", connection);
        command.Parameters.AddWithValue("id", runId);
        await using var reader = await command.ExecuteReaderAsync();
        Assert.True(await reader.ReadAsync(), $"run {runId} is not in the catalog");
        return (reader.GetString(0), reader.GetString(1));
    }

    /// <summary>Two linked clones of one template: vm1's own disk (the fixture's), vm2's a new overlay on vm1's template.</summary>
    private static async Task<(TestVm Vm1, TestVm Vm2, string Template)> LinkedClonesAsync()
    {
        var vm1 = await TestVm.CreateAsync(new DiskSpec("vda", WithTemplate: true));
        var vm2 = await TestVm.CreateAsync(new DiskSpec("vda", FillPattern: null));
        var template = vm1.Disk("vda").TemplatePath!;
        File.Delete(vm2.Disk("vda").Path);
        await Tools.RunAsync("qemu-img", "create", "-q", "-f", "qcow2", "-b", template, "-F", "qcow2", vm2.Disk("vda").Path);
        return (vm1, vm2, template);
    }

    [Fact]
    public async Task Linked_clones_commit_into_the_template_is_refused_naming_the_other_domain_and_pull_leaves_the_template_identical()
    {
        var (vm1, vm2, template) = await LinkedClonesAsync();
        await using var _1 = vm1;
        await using var _2 = vm2;
        await vm1.StartAsync();
        await vm2.StartAsync();
        await vm1.WriteAsGuestAsync("vda", 4 * MiB, 0x44, MiB);
        var templateHash = ChainFixture.Sha256(template);

        // chain show --json: both layers, and who else uses the template (vm2, live and persistent).
        var show = await Backupd(null, "chain", "show", "--domain", vm1.Name, "--json");
        Assert.True(show.ExitCode == 0, show.Stderr);
        var disk = JsonDocument.Parse(show.Stdout).RootElement.GetProperty("domains")[0].GetProperty("disks")[0];
        var layers = disk.GetProperty("layers");
        Assert.Equal(2, layers.GetArrayLength());
        Assert.Equal(vm1.Disk("vda").Path, layers[0].GetProperty("path").GetString());
        Assert.Equal(0, layers[0].GetProperty("usedBy").GetArrayLength());
        Assert.Equal(template, layers[1].GetProperty("path").GetString());
        Assert.Equal(64 * MiB, layers[1].GetProperty("virtualSize").GetInt64());
        Assert.Equal("qcow2", layers[0].GetProperty("backingFormat").GetString());
        var users = layers[1].GetProperty("usedBy").EnumerateArray().Select(u => (u.GetProperty("domain").GetString(), u.GetProperty("definition").GetString())).ToList();
        Assert.Contains((vm2.Name, "live"), users);
        Assert.Contains((vm2.Name, "persistent"), users);

        var refused = await Backupd(null, "chain", "shorten", "--domain", vm1.Name, "--depth", "1", "--json");
        Assert.Equal(2, refused.ExitCode);
        var error = JsonDocument.Parse(refused.Stdout).RootElement;
        Assert.Equal("shared-layer", error.GetProperty("kind").GetString());
        Assert.Contains(vm2.Name, error.GetProperty("error").GetString(), StringComparison.Ordinal);
        Assert.Contains("--method pull", error.GetProperty("error").GetString(), StringComparison.Ordinal);
        Assert.Equal(templateHash, ChainFixture.Sha256(template));
        Assert.Equal(2, await ChainFixture.DepthAsync(vm1.Disk("vda").Path));

        var dry = await Backupd(null, "chain", "shorten", "--domain", vm1.Name, "--depth", "1", "--method", "pull", "--dry-run", "--json");
        Assert.True(dry.ExitCode == 0, dry.Stderr);
        Assert.True(JsonDocument.Parse(dry.Stdout).RootElement.GetProperty("dryRun").GetBoolean());
        Assert.Equal(2, await ChainFixture.DepthAsync(vm1.Disk("vda").Path));

        var pulled = await Backupd(null, "chain", "shorten", "--domain", vm1.Name, "--depth", "1", "--method", "pull", "--json");
        Assert.True(pulled.ExitCode == 0, pulled.Stderr);
        var runId = JsonDocument.Parse(pulled.Stdout).RootElement.GetProperty("catalogRunId").GetInt64();
        Assert.Equal(("chain", "succeeded"), await CatalogRunAsync(runId));
        Assert.Equal(1, await ChainFixture.DepthAsync(vm1.Disk("vda").Path));
        Assert.Equal(templateHash, ChainFixture.Sha256(template));
        Assert.True(File.Exists(template), "the template other domains use is never deleted");
        Assert.Empty(await ChainFixture.MissingInGuestAsync(vm1, "vda", [new(0, MiB, 0x11), new(MiB, MiB, 0x12), new(4 * MiB, MiB, 0x44)]));
        Assert.True(await vm2.GuestReadMatchesAsync("vda", 0, MiB, 0x11));
    }

    [Theory]
    [InlineData(Faults.ChainAfterJournal, 4)]
    [InlineData(Faults.ChainMidJob, 1)]
    [InlineData(Faults.ChainAfterJob, 1)]
    public async Task Shorten_killed_at_each_step_is_settled_by_recover_never_half(string step, int depthAfter)
    {
        await using var vm = await TestVm.CreateAsync(new DiskSpec("vda"));
        await vm.StartAsync();
        var writes = await ChainFixture.BuildFourLayersAsync(vm, "vda");
        var cur = Path.Combine(vm.Directory, "cur.qcow2");

        var killed = await Backupd(Kill(step), "chain", "shorten", "--domain", vm.Name, "--depth", "1", "--bandwidth", "1M", "--json");
        Assert.Equal(137, killed.ExitCode);
        await vm.WriteAsGuestAsync("vda", 40 * MiB, 0x6b, MiB); // the guest goes on while backupd is dead
        writes.Add(new GuestWrite(40 * MiB, MiB, 0x6b));

        var recover = await Backupd(null, "recover", "--domain", vm.Name, "--json");
        Assert.True(recover.ExitCode == 0, $"recover exited {recover.ExitCode}: {recover.Stdout} {recover.Stderr}");

        var active = depthAfter == 1 ? vm.Disk("vda").Path : cur;
        Assert.Equal(active, await vm.ActiveSourceAsync("vda"));
        Assert.Equal(active, await vm.ActiveSourceAsync("vda", inactive: true));
        Assert.Equal(depthAfter, await ChainFixture.DepthAsync(active));
        Assert.Contains("No current block job", await Tools.Virsh("blockjob", vm.Name, "vda"), StringComparison.Ordinal);
        Assert.Empty(new ChainJournal(config.StateDirectory).OpenEntries());
        Assert.Empty(await ChainFixture.MissingInGuestAsync(vm, "vda", writes));

        // Settled for good: the same shorten now runs to the end (or finds nothing to do).
        var again = await Backupd(null, "chain", "shorten", "--domain", vm.Name, "--depth", "1", "--json");
        Assert.True(again.ExitCode == 0, again.Stderr);
        Assert.Equal(1, await ChainFixture.DepthAsync(vm.Disk("vda").Path));
        Assert.Empty(await ChainFixture.MissingInGuestAsync(vm, "vda", writes));
    }

    [Theory]
    [InlineData(Faults.MoveAfterJournal, false)]
    [InlineData(Faults.MoveMidCopy, false)]
    [InlineData(Faults.MoveAfterPivot, true)]
    public async Task Move_disk_killed_at_each_step_is_aborted_or_finished_by_recover(string step, bool onDestination)
    {
        await using var vm = await TestVm.CreateAsync(new DiskSpec("vda"));
        await vm.StartAsync();
        await vm.WriteAsGuestAsync("vda", 8 * MiB, 0x5a, 8 * MiB); // enough that a 1 MiB/s mirror is still running at the kill
        var destination = Path.Combine(vm.Directory, "moved.raw");

        var killed = await Backupd(Kill(step), "move-disk", "--domain", vm.Name, "--disk", "vda", "--to", destination, "--format", "raw", "--bandwidth", "1M", "--json");
        Assert.Equal(137, killed.ExitCode);
        await vm.WriteAsGuestAsync("vda", 40 * MiB, 0x6b, MiB);

        var recover = await Backupd(null, "recover", "--domain", vm.Name, "--json");
        Assert.True(recover.ExitCode == 0, $"recover exited {recover.ExitCode}: {recover.Stdout} {recover.Stderr}");

        var active = onDestination ? destination : vm.Disk("vda").Path;
        Assert.Equal(active, await vm.ActiveSourceAsync("vda"));
        Assert.Equal(active, await vm.ActiveSourceAsync("vda", inactive: true));
        Assert.Equal(onDestination, File.Exists(destination));
        Assert.Equal(!onDestination, File.Exists(vm.Disk("vda").Path));
        Assert.Contains("No current block job", await Tools.Virsh("blockjob", vm.Name, "vda"), StringComparison.Ordinal);
        Assert.Empty(new ChainJournal(config.StateDirectory).OpenEntries());
        Assert.True(await vm.GuestReadMatchesAsync("vda", 8 * MiB, 8 * MiB, 0x5a));
        Assert.True(await vm.GuestReadMatchesAsync("vda", 40 * MiB, MiB, 0x6b));
    }

    [Fact]
    public async Task A_shorten_holds_the_domains_run_lock_so_a_backup_of_it_is_refused_meanwhile()
    {
        await using var vm = await TestVm.CreateAsync(new DiskSpec("vda"));
        await vm.StartAsync();
        await ChainFixture.BuildFourLayersAsync(vm, "vda");
        // SIGSTOP right after the job started: the shorten holds both locks while it is stopped.
        using var shorten = BackupdProcess.StartCollecting(new Dictionary<string, string> { [Faults.EnvironmentVariable] = $"{Faults.ChainMidJob}:stop" },
            out var output, "--config", config.Path, "chain", "shorten", "--domain", vm.Name, "--depth", "1", "--json");
        try
        {
            await Eventually.WaitUntilAsync(() => File.ReadAllText($"/proc/{shorten.Id}/stat").Split(' ')[2] == "T", TimeSpan.FromSeconds(60), "the shorten to stop at its job", output);
            var backup = await Backupd(null, "backup", "--domain", vm.Name, "--to", Path.Combine(config.Directory, "repo"), "--json");
            Assert.Equal(4, backup.ExitCode);
            Assert.Equal("busy", JsonDocument.Parse(backup.Stdout).RootElement.GetProperty("kind").GetString());
        }
        finally
        {
            await Tools.RunAsync("kill", "-CONT", shorten.Id.ToString(System.Globalization.CultureInfo.InvariantCulture));
        }
        await shorten.WaitForExitAsync();
        Assert.Equal(0, shorten.ExitCode);
        Assert.Equal(1, await ChainFixture.DepthAsync(vm.Disk("vda").Path));
    }

    [Fact]
    public async Task The_daemon_shortens_a_chain_deeper_than_the_policys_max_depth_right_after_the_backup()
    {
        await using var vm = await TestVm.CreateAsync(new DiskSpec("vda"));
        await vm.StartAsync();
        var writes = await ChainFixture.BuildFourLayersAsync(vm, "vda");
        var repository = Path.Combine(config.Directory, "repo");
        await File.WriteAllTextAsync(Path.Combine(config.PoliciesDirectory, "chains.yaml"),
            $"name: chains-{vm.Name}\ndomains: [{vm.Name}]\nschedule: every 5s\nrepository: {repository}\nchains: {{max-depth: 2, method: commit}}\n");
        using var daemon = BackupdProcess.StartCollecting(null, out var output, "--config", config.Path, "daemon");
        try
        {
            await Eventually.WaitUntilAsync(() => output.Any(l => l.Contains("job done, now on", StringComparison.Ordinal) && l.Contains(vm.Name, StringComparison.Ordinal)),
                TimeSpan.FromSeconds(120), "the policy's chain maintenance", output);
        }
        finally
        {
            await Tools.RunAsync("kill", "-TERM", daemon.Id.ToString(System.Globalization.CultureInfo.InvariantCulture));
            await daemon.WaitForExitAsync();
        }
        var cur = Path.Combine(vm.Directory, "cur.qcow2");
        Assert.Equal(cur, await vm.ActiveSourceAsync("vda"));
        Assert.Equal(2, await ChainFixture.DepthAsync(cur));
        Assert.True(ScheduledDaemonTests.PointCount(repository) >= 1, "the backup came first");
        Assert.Empty(await ChainFixture.MissingInGuestAsync(vm, "vda", writes));
        await using var connection = new NpgsqlConnection(database.ConnectionString);
        await connection.OpenAsync();
        await using var command = new NpgsqlCommand("select count(*) from runs where domain_name = @n and kind = 'chain' and state = 'succeeded' and trigger = 'policy'", connection);
        command.Parameters.AddWithValue("n", vm.Name);
        Assert.True((long)(await command.ExecuteScalarAsync())! >= 1, "a succeeded run of kind chain is in the catalog");
    }
}
