using System.Collections.Concurrent;
using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Sockets;
using System.Text.Json;
using System.Xml.Linq;
using Backupd.Daemon.Workflow;
using Backupd.Integration.Catalog;
using Backupd.Integration.Fixtures;
using Backupd.Storage.Catalog;
using static Backupd.Integration.Fixtures.Eventually;

namespace Backupd.Integration;

/// <summary>
/// Paths operators rely on, end to end with the real executable: the daemon's start-up recovery of a run
/// killed on the overlay, `restore --in-place --keep-old`, the network and shareable disk skip reasons, and
/// a policy's `verify.schedule` with the real verifier finding damage the test makes.
/// </summary>
[Trait("Category", "Integration")]
public sealed class OperatorPathsTests(PostgresDatabase database) : CatalogProcessTestBase(database)
{
    private static Dictionary<string, string> KillAt(string step) => new() { [Faults.EnvironmentVariable] = $"{step}:kill" };

    private static IEnumerable<string> OverlayFiles(TestVm vm) => Directory.EnumerateFiles(vm.Directory).Where(OverlayNaming.IsOverlay);

    /// <summary>
    /// A backup schedule whose first fire is about six hours after now (UTC, computed when the test runs), so
    /// within a test's few minutes no backup job can run, whatever the date: the daemon's behaviour at start-up
    /// is all the test sees.
    /// </summary>
    private static string FarSchedule()
    {
        var at = DateTimeOffset.UtcNow.AddHours(6);
        return string.Create(CultureInfo.InvariantCulture, $"'0 {at.Minute} {at.Hour} * * ?'");
    }

    private string WritePolicy(string name, string body)
    {
        File.WriteAllText(Path.Combine(Config.PoliciesDirectory, $"{name}.yaml"), $"name: {name}\n{body}");
        return name;
    }

    [Fact]
    public async Task A_run_killed_on_the_overlay_is_merged_back_by_the_daemon_at_start_up_before_any_job()
    {
        // Every backupd on this host sees every domain's overlays in libvirt, so a `recover` or a daemon start of another
        // test may merge ours between the moment we let go of the domain and the moment our daemon's recovery looks at it.
        // That attempt proves nothing about our daemon: it is repeated with a new VM, and three lost in a row fail.
        const int attempts = 3;
        for (var attempt = 1; attempt <= attempts; attempt++)
        {
            if (await KillOnTheOverlayThenStartTheDaemonAsync()) return;
        }
        Assert.Fail($"in {attempts} attempts another backupd process on this host merged the overlays before the daemon's start-up recovery looked at them");
    }

    /// <summary>
    /// One attempt: false when another process got there first (the daemon finished its start-up with nothing left to merge),
    /// else every assertion about what the daemon's recovery did.
    /// </summary>
    private async Task<bool> KillOnTheOverlayThenStartTheDaemonAsync()
    {
        await using var vm = await TestVm.CreateAsync(new DiskSpec("vda"), new DiskSpec("vdb", Format: "raw"));
        await vm.StartAsync();
        var killed = await Backupd(KillAt(Faults.AfterSnapshot), "backup", "--domain", vm.Name, "--to", Repository, "--json");
        Assert.Equal(137, killed.ExitCode); // SIGKILL
        string?[] overlays;
        // Held as a running backup holds it, so a `backupd recover` of another test on this host leaves the VM alone
        // until just before the daemon starts (the "deleted overlay" lines below show it was the daemon's recovery).
        using (var held = global::Backupd.Daemon.Workflow.HostRunLock.TryAcquire(Config.StateDirectory, vm.Uuid))
        {
            Assert.NotNull(held);
            overlays = [await vm.ActiveSourceAsync("vda"), await vm.ActiveSourceAsync("vdb")];
            // Merged already between the kill and our lock: another process won this attempt.
            if (overlays.All(o => !OverlayNaming.IsOverlay(o)) && !OverlayFiles(vm).Any()) return false;
            Assert.All(overlays, o => Assert.True(OverlayNaming.IsOverlay(o), $"not on an overlay after the kill: {o}"));
            // Lands in the overlay only: lost unless the merge-back happens.
            await vm.WriteAsGuestAsync("vda", 4 * MiB, 0xb2, MiB);
            WritePolicy("later", $"domains: [{vm.Name}]\nschedule: {FarSchedule()}\nrepository: {Repository}\n");
        }

        await using var daemon = await RunningDaemon.StartAsync(Config);
        bool DaemonDeletedBoth() => overlays.All(o => daemon.Output.Any(l => l.Contains($"deleted overlay {o}", StringComparison.Ordinal)));
        // The scheduler loads the policies after the start-up recovery: by then the daemon has done all it will do at start.
        await WaitUntilAsync(() => DaemonDeletedBoth() || daemon.Output.Any(l => l.Contains("policies: ", StringComparison.Ordinal)),
            TimeSpan.FromSeconds(120), "the daemon's start-up recovery", daemon.Output);
        if (!DaemonDeletedBoth())
        {
            // Only a lost race excuses it: the overlays are gone and the disks on their bases, but not by our daemon.
            Assert.All(overlays, o => Assert.False(File.Exists(o), $"the daemon's start-up recovery left overlay {o} in place"));
            await daemon.StopAsync();
            return false;
        }
        // The daemon's own recovery did it (not another backupd on the host): it logs each overlay it deletes.

        Assert.Equal("running", await vm.StateAsync());
        foreach (var t in new[] { "vda", "vdb" })
        {
            Assert.Equal(vm.Disk(t).Path, await vm.ActiveSourceAsync(t));
            Assert.Equal(vm.Disk(t).Path, await vm.ActiveSourceAsync(t, inactive: true));
        }
        Assert.DoesNotContain(".backupd-", await vm.LiveXmlAsync(), StringComparison.Ordinal);
        Assert.DoesNotContain(".backupd-", await vm.InactiveXmlAsync(), StringComparison.Ordinal);
        Assert.Empty(OverlayFiles(vm));
        Assert.True(await vm.GuestReadMatchesAsync("vda", 4 * MiB, MiB, 0xb2));
        Assert.Empty(Directory.EnumerateFiles(Path.Combine(Config.StateDirectory, "journal"), "*.json"));
        // No job ran (its first fire is hours away): start-up did it, before the scheduler's first job.
        Assert.DoesNotContain(daemon.Output, l => l.Contains("policy later: backing up", StringComparison.Ordinal));
        Assert.Equal(0, ScheduledDaemonTests.PointCount(Repository));
        // The killed run's catalog row: the daemon's start marked it interrupted.
        await using var catalog = new CatalogStore(Database.ConnectionString);
        var run = Assert.Single(await catalog.ListRunsAsync(Guid.Parse(vm.Uuid), 10, default));
        Assert.Equal("interrupted", run.State);

        await daemon.StopAsync();
        return true;
    }

    [Fact]
    public async Task In_place_with_keep_old_restores_the_point_byte_for_byte_and_keeps_the_replaced_images_beside_them()
    {
        await using var vm = await TestVm.CreateAsync(new DiskSpec("vda"), new DiskSpec("vdb", Format: "raw", SizeBytes: 16 * MiB));
        var references = Path.Combine(Config.Directory, "references");
        Directory.CreateDirectory(references);
        string Copy(string path, string suffix)
        {
            var copy = Path.Combine(references, Path.GetFileName(path) + suffix);
            File.Copy(path, copy);
            return copy;
        }
        // Shut off: the files are exactly what the point holds.
        var atBackup = vm.Disks.ToDictionary(d => d.Target, d => Copy(d.Path, ".at-backup"));
        var backup = await Backupd("backup", "--domain", vm.Name, "--to", Repository, "--json");
        Assert.True(backup.ExitCode == 0, backup.Stderr);
        var pointId = JsonDocument.Parse(backup.Stdout).RootElement.GetProperty("restorePointId").GetString()!;
        await TestVm.WritePatternAsync(vm.Disk("vda").Path, "qcow2", 2 * MiB, MiB, 0x77);
        await TestVm.WritePatternAsync(vm.Disk("vdb").Path, "raw", MiB, MiB, 0x78);
        var beforeRestore = vm.Disks.ToDictionary(d => d.Target, d => Copy(d.Path, ".changed"));

        var run = await Backupd("restore", "--domain", vm.Name, "--point", pointId, "--in-place", "--force", "--keep-old", "--json");

        Assert.True(run.ExitCode == 0, $"restore exited {run.ExitCode}: {run.Stderr}");
        var files = JsonDocument.Parse(run.Stdout).RootElement.GetProperty("inPlace").EnumerateArray()
            .ToDictionary(f => f.GetProperty("path").GetString()!, f => f.GetProperty("keptAside").GetString());
        foreach (var disk in vm.Disks)
        {
            Assert.True(SameBytes(atBackup[disk.Target], disk.Path), $"{disk.Path} differs from the point");
            // Where docs/cli.md says: IMAGE.before-restore-TIME, beside the image, holding what was replaced.
            var kept = Assert.Single(Directory.GetFiles(vm.Directory, Path.GetFileName(disk.Path) + ".before-restore-*"));
            Assert.Equal(kept, files[disk.Path]);
            Assert.True(SameBytes(beforeRestore[disk.Target], kept), $"{kept} is not the replaced image");
            Assert.Equal(disk.Path, await vm.ActiveSourceAsync(disk.Target, inactive: true));
        }
        Assert.DoesNotContain(Directory.GetFiles(vm.Directory, ".*"), p => p.Contains("backupd-restore", StringComparison.Ordinal));
        Assert.Equal("shut off", await vm.StateAsync());
        // The definition leads the guest to the restored data: the pattern written after the backup is gone.
        await vm.StartAsync();
        Assert.True(await vm.GuestReadMatchesAsync("vda", 0, MiB, 0x11));
        Assert.True(await vm.GuestReadMatchesAsync("vda", 2 * MiB, MiB, 0x00));
        Assert.True(await vm.GuestReadMatchesAsync("vdb", MiB, MiB, 0x00));
    }

    [Fact]
    public async Task Network_and_shareable_disks_are_skipped_with_their_reasons_and_get_no_overlay()
    {
        await using var vm = await TestVm.CreateAsync(new DiskSpec("vda"));
        var shared = Path.Combine(vm.Directory, "shared.raw");
        await Tools.RunAsync("qemu-img", "create", "-q", "-f", "raw", shared, "16M");
        await using var nbd = await NbdExport.StartAsync(Path.Combine(vm.Directory, "exported.raw"));
        await AttachAsync(vm, $"""
            <disk type='file' device='disk'>
              <driver name='qemu' type='raw' cache='none'/>
              <source file='{shared}'/>
              <target dev='vdb' bus='virtio'/>
              <shareable/>
            </disk>
            """);
        await AttachAsync(vm, $"""
            <disk type='network' device='disk'>
              <driver name='qemu' type='raw'/>
              <source protocol='nbd'><host name='127.0.0.1' port='{nbd.Port}'/></source>
              <target dev='vdc' bus='virtio'/>
            </disk>
            """);
        await vm.StartAsync();

        // Stopped right after the snapshot: only vda is on an overlay, so the other two were snapshot='no'.
        var killed = await Backupd(KillAt(Faults.AfterSnapshot), "backup", "--domain", vm.Name, "--to", Repository);
        Assert.Equal(137, killed.ExitCode);
        Assert.True(OverlayNaming.IsOverlay(await vm.ActiveSourceAsync("vda")));
        await AssertUntouchedAsync(vm, shared, nbd.Port);
        Assert.Equal([vm.Disk("vda").Path], OverlayFiles(vm).Select(o => o[..o.IndexOf(".backupd-", StringComparison.Ordinal)]));

        // The next backup recovers that run first, then backs up vda and reports the two others.
        var run = await Backupd("backup", "--domain", vm.Name, "--to", Repository, "--json");

        Assert.True(run.ExitCode == 0, $"backup exited {run.ExitCode}: {run.Stderr}");
        var root = JsonDocument.Parse(run.Stdout).RootElement;
        Assert.Equal("succeeded", root.GetProperty("outcome").GetString());
        Assert.Equal(["vda"], root.GetProperty("disks").EnumerateArray().Select(d => d.GetProperty("target").GetString()));
        var skipped = root.GetProperty("skipped").EnumerateArray()
            .ToDictionary(e => e.GetProperty("target").GetString()!, e => e.GetProperty("reason").GetString()!);
        Assert.Equal(["vdb", "vdc"], skipped.Keys.Order());
        Assert.Equal(DiskSelectionReasons.Shareable, skipped["vdb"]);
        Assert.Equal(DiskSelectionReasons.NbdNetwork, skipped["vdc"]);
        Assert.Contains($"skipping disk vdb: {DiskSelectionReasons.Shareable}", run.Stderr, StringComparison.Ordinal);
        Assert.Contains($"skipping disk vdc: {DiskSelectionReasons.NbdNetwork}", run.Stderr, StringComparison.Ordinal);
        // The catalog records what was backed up (only vda); the skip reasons are in the output and the log only.
        await using var catalog = new CatalogStore(Database.ConnectionString);
        var point = (await catalog.GetPointAsync(root.GetProperty("restorePointId").GetString()!, default))!;
        Assert.Equal(["vda"], point.Files.Select(f => f.Disk).Distinct());
        Assert.Equal("succeeded", point.Run!.State);
        Assert.Empty(OverlayFiles(vm));
        Assert.Equal(vm.Disk("vda").Path, await vm.ActiveSourceAsync("vda"));
        await AssertUntouchedAsync(vm, shared, nbd.Port);
    }

    [Fact]
    public async Task A_verify_schedule_verifies_with_the_real_verifier_records_the_result_and_reports_a_damaged_mirror()
    {
        await using var vm = await TestVm.CreateAsync(new DiskSpec("vda", Format: "raw", SizeBytes: 16 * MiB));
        var backup = await Backupd("backup", "--domain", vm.Name, "--to", Repository, "--json");
        Assert.True(backup.ExitCode == 0, backup.Stderr);
        var pointId = JsonDocument.Parse(backup.Stdout).RootElement.GetProperty("restorePointId").GetString()!;
        var policy = WritePolicy("check", $"domains: [{vm.Name}]\nschedule: {FarSchedule()}\nrepository: {Repository}\nverify: {{schedule: every 3s}}\n");
        await using var catalog = new CatalogStore(Database.ConnectionString);
        async Task<IReadOnlyList<EventRow>> VerifyEventsAsync() => await catalog.ListEventsAsync("verify", pointId, 1000, default);

        await using var daemon = await RunningDaemon.StartAsync(Config);
        await WaitUntilAsync(() => daemon.Output.Any(l => l.Contains($"policy {policy}: every restore point verified", StringComparison.Ordinal)),
            TimeSpan.FromSeconds(90), "a scheduled verify", daemon.Output);
        var good = await VerifyEventsAsync();
        Assert.NotEmpty(good);
        Assert.All(good, e => Assert.True(e.Ok && e.Detail.StartsWith("scheduled verify:", StringComparison.Ordinal), e.Detail));

        // One flipped bit in the mirror, inside the data the disk was filled with (0x11 at 0-1 MiB).
        var mirror = Path.Combine(Repository, "groups", vm.Uuid, "files", "vda.0", "mirror");
        using (var stream = new FileStream(mirror, FileMode.Open, FileAccess.ReadWrite))
        {
            stream.Position = 12345;
            var b = stream.ReadByte();
            stream.Position = 12345;
            stream.WriteByte((byte)(b ^ 0x10));
        }

        await WaitUntilAsync(() => daemon.Output.Any(l => l.Contains($"policy {policy}: restore point {pointId} of {vm.Name} is damaged", StringComparison.Ordinal)),
            TimeSpan.FromSeconds(90), "the scheduled verify to report the damage", daemon.Output);
        await WaitUntilAsync(() => daemon.Output.Any(l => l.Contains($"policy {policy}: verification found damaged restore points", StringComparison.Ordinal)),
            TimeSpan.FromSeconds(30), "the verify fire's summary", daemon.Output);
        var latest = (await VerifyEventsAsync())[0];
        Assert.False(latest.Ok);
        Assert.Contains("vda.0", latest.Detail, StringComparison.Ordinal);
        var show = await Backupd("show", pointId, "--json");
        Assert.False(JsonDocument.Parse(show.Stdout).RootElement.GetProperty("lastVerify").GetProperty("ok").GetBoolean());
        Assert.DoesNotContain(daemon.Output, l => l.Contains($"policy {policy}: backing up", StringComparison.Ordinal));

        await daemon.StopAsync();
    }

    private static Task<string> AttachAsync(TestVm vm, string diskXml)
    {
        var file = Path.Combine(vm.Directory, $"attach-{Guid.NewGuid():N}.xml");
        File.WriteAllText(file, diskXml);
        return Tools.Virsh("attach-device", vm.Name, file, "--config");
    }

    /// <summary>vdb still on the shareable file, vdc still the nbd export, in the live and the persistent XML.</summary>
    private static async Task AssertUntouchedAsync(TestVm vm, string shared, int port)
    {
        Assert.Equal(shared, await vm.ActiveSourceAsync("vdb"));
        Assert.Equal(shared, await vm.ActiveSourceAsync("vdb", inactive: true));
        foreach (var xml in new[] { await vm.LiveXmlAsync(), await vm.InactiveXmlAsync() })
        {
            var vdc = XDocument.Parse(xml).Descendants("disk").Single(d => d.Element("target")?.Attribute("dev")?.Value == "vdc");
            Assert.Equal("network", vdc.Attribute("type")?.Value);
            Assert.Equal("nbd", vdc.Element("source")?.Attribute("protocol")?.Value);
            Assert.Equal(port.ToString(CultureInfo.InvariantCulture), vdc.Element("source")?.Element("host")?.Attribute("port")?.Value);
            Assert.Null(vdc.Element("backingStore")?.Element("source"));
        }
        Assert.Empty(Directory.EnumerateFiles(vm.Directory, "shared.raw.backupd-*"));
    }

    private static bool SameBytes(string a, string b)
    {
        using var x = File.OpenRead(a);
        using var y = File.OpenRead(b);
        if (x.Length != y.Length) return false;
        var bx = new byte[1 << 20];
        var by = new byte[1 << 20];
        while (true)
        {
            var n = x.ReadAtLeast(bx, bx.Length, throwOnEndOfStream: false);
            if (n == 0) return true;
            y.ReadExactly(by, 0, n);
            if (!bx.AsSpan(0, n).SequenceEqual(by.AsSpan(0, n))) return false;
        }
    }

    /// <summary>The reasons docs/workflow.md promises, as DiskSelection words them.</summary>
    private static class DiskSelectionReasons
    {
        public const string Shareable = "shareable disk: other domains write to it, a snapshot here would split it";
        public const string NbdNetwork = "network disk (nbd): back it up on its storage system";
    }

    /// <summary>A raw image exported over NBD on 127.0.0.1 by qemu-nbd (persistent, several clients), killed on dispose.</summary>
    private sealed class NbdExport : IAsyncDisposable
    {
        private const string Binary = "/usr/bin/qemu-nbd";
        private readonly Process process;

        public int Port { get; }

        private NbdExport(Process process, int port)
        {
            this.process = process;
            Port = port;
        }

        public static async Task<NbdExport> StartAsync(string image)
        {
            if (!File.Exists(Binary)) throw new InvalidOperationException($"{Binary} is missing: apt-get install -y qemu-utils ({Tools.SetupHint})");
            await Tools.RunAsync("qemu-img", "create", "-q", "-f", "raw", image, "16M");
            var port = FreePort();
            var info = new ProcessStartInfo(Binary) { RedirectStandardError = true, RedirectStandardOutput = true };
            foreach (var a in new[] { "-f", "raw", "-t", "-e", "4", "-b", "127.0.0.1", "-p", port.ToString(CultureInfo.InvariantCulture), image })
                info.ArgumentList.Add(a);
            var export = new NbdExport(Process.Start(info)!, port);
            var deadline = DateTime.UtcNow.AddSeconds(30);
            while (true)
            {
                try
                {
                    using var probe = new TcpClient();
                    await probe.ConnectAsync(IPAddress.Loopback, port);
                    return export;
                }
                catch (SocketException) when (DateTime.UtcNow < deadline && !export.process.HasExited)
                {
                    await Task.Delay(100);
                }
                catch
                {
                    var stderr = export.process.HasExited ? await export.process.StandardError.ReadToEndAsync() : "";
                    await export.DisposeAsync();
                    throw new InvalidOperationException($"qemu-nbd did not listen on 127.0.0.1:{port}: {stderr}");
                }
            }
        }

        private static int FreePort()
        {
            using var listener = new TcpListener(IPAddress.Loopback, 0);
            listener.Start();
            return ((IPEndPoint)listener.LocalEndpoint).Port;
        }

        public async ValueTask DisposeAsync()
        {
            if (!process.HasExited) process.Kill();
            await process.WaitForExitAsync();
            process.Dispose();
        }
    }

    /// <summary>`backupd daemon` with the test's configuration, started until READY; stopped with SIGTERM (exit 0 asserted) or killed on dispose.</summary>
    private sealed class RunningDaemon : IAsyncDisposable
    {
        private readonly NotifySocket notify;
        private readonly Process process;

        public ConcurrentQueue<string> Output { get; }

        private RunningDaemon(NotifySocket notify, Process process, ConcurrentQueue<string> output)
        {
            this.notify = notify;
            this.process = process;
            Output = output;
        }

        public static async Task<RunningDaemon> StartAsync(TempConfig config)
        {
            var notify = new NotifySocket();
            var process = BackupdProcess.StartCollecting(new Dictionary<string, string> { ["NOTIFY_SOCKET"] = notify.Path }, out var output, "--config", config.Path, "daemon");
            var daemon = new RunningDaemon(notify, process, output);
            try
            {
                Assert.Equal("READY=1", await notify.ReceiveAsync(TimeSpan.FromSeconds(60)));
                return daemon;
            }
            catch
            {
                await daemon.DisposeAsync();
                throw;
            }
        }

        public async Task StopAsync()
        {
            await Tools.RunAsync("kill", "-TERM", process.Id.ToString(CultureInfo.InvariantCulture));
            using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(120));
            await process.WaitForExitAsync(timeout.Token);
            Assert.Equal(0, process.ExitCode);
        }

        public async ValueTask DisposeAsync()
        {
            if (!process.HasExited)
            {
                process.Kill(entireProcessTree: true);
                await process.WaitForExitAsync();
            }
            process.Dispose();
            notify.Dispose();
        }
    }
}
