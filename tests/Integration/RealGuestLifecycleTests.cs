using System.Diagnostics;
using System.Text.Json;
using Backupd.Integration.Fixtures;

namespace Backupd.Integration;

/// <summary>Issue 11: a real guest that shuts down during the copy, and backupd killed mid-copy; a guest of its own per test.</summary>
[Trait("Category", "Integration")]
public sealed class RealGuestLifecycleTests : IAsyncLifetime, IDisposable
{
    private TestGuest guest = null!;
    private readonly TempConfig config = new("Host=/nonexistent");
    private string Repository => Path.Combine(guest.Directory, "repo");

    public async Task InitializeAsync() => guest = await TestGuest.BootAsync();

    public async Task DisposeAsync()
    {
        if (guest is not null) await guest.DisposeAsync();
    }

    public void Dispose() => config.Dispose();

    private string[] BackupArgs(string quiesce) =>
        ["--config", config.Path, "backup", "--domain", guest.Name, "--to", Repository, "--no-catalog", "--json", "--quiesce", quiesce];

    private int OverlaysLeft() => Directory.EnumerateFiles(guest.Directory).Count(f => Path.GetFileName(f).Contains(".backupd-", StringComparison.Ordinal));

    [Fact]
    public async Task A_guest_shut_down_during_the_copy_is_merged_offline_and_both_images_are_clean()
    {
        Console.WriteLine($"guest boot to first 'synced': {guest.BootTime.TotalSeconds:0.0} s");
        // The run stops itself mid-copy (SIGSTOP): the guest shuts down meanwhile, on its overlay.
        using var run = Process.Start(BackupdProcess.StartInfo(new Dictionary<string, string> { ["BACKUPD_FAULT"] = "mid-copy:stop" }, BackupArgs("preferred")))!;
        var stdout = run.StandardOutput.ReadToEndAsync();
        var stderr = run.StandardError.ReadToEndAsync();
        await WaitStoppedAsync(run);
        var synced = guest.Synced();
        await guest.ShutdownAsync();
        Assert.Equal("shut off", await guest.StateAsync());
        _ = Process.Start("kill", ["-CONT", run.Id.ToString(System.Globalization.CultureInfo.InvariantCulture)])!;
        await run.WaitForExitAsync();

        var json = JsonDocument.Parse(await stdout).RootElement;
        Assert.True(run.ExitCode == 0, $"exit {run.ExitCode}: {await stderr}{json}");
        Assert.Equal("application-consistent", json.GetProperty("consistency").GetString());
        Assert.Equal(0, OverlaysLeft());
        Assert.DoesNotContain(".backupd-", await Tools.Virsh("dumpxml", "--inactive", guest.Name), StringComparison.Ordinal);
        var disk = await GuestDisk.CheckAsync(guest.DataDisk, "qcow2", replayJournal: false);
        Assert.True(disk.Clean, disk.FsckOutput); // the guest's writes after the snapshot were merged from the overlay
        Assert.True(disk.ManifestFiles >= synced, $"{disk.ManifestFiles} files in the merged disk, the guest had synced {synced}");
        Assert.Empty(disk.BadFiles);
        var point = await GuestDisk.CheckAsync(Path.Combine(Repository, "groups", (await Tools.Virsh("domuuid", guest.Name)).Trim(), "files", "vda.0", "mirror"), "qcow2", replayJournal: false);
        Assert.True(point.Clean, point.FsckOutput);
        Assert.Empty(point.BadFiles);
    }

    [Fact]
    public async Task Backupd_killed_mid_copy_then_recover_the_guest_keeps_writing_and_its_fs_is_clean_after_shutdown()
    {
        var killed = await BackupdProcess.RunAsync(new Dictionary<string, string> { ["BACKUPD_FAULT"] = "mid-copy:kill" }, BackupArgs("required"));
        Assert.Equal(137, killed.ExitCode); // SIGKILL
        Assert.Contains(".backupd-", await Tools.Virsh("dumpxml", guest.Name), StringComparison.Ordinal); // left on its overlay

        var recover = await BackupdProcess.RunAsync(null, ["--config", config.Path, "recover"]);
        Assert.True(recover.ExitCode == 0, $"recover exit {recover.ExitCode}: {recover.Stderr}{recover.Stdout}");
        Assert.DoesNotContain(".backupd-", await Tools.Virsh("dumpxml", guest.Name), StringComparison.Ordinal);
        Assert.True(await guest.KeepsWritingAsync(5, TimeSpan.FromSeconds(60)), "the writer stopped after recover");
        Assert.Equal("thawed", await guest.FreezeStatusAsync());

        var synced = guest.Synced();
        await guest.ShutdownAsync();
        Assert.Equal(0, OverlaysLeft());
        var disk = await GuestDisk.CheckAsync(guest.DataDisk, "qcow2", replayJournal: false);
        Assert.True(disk.Clean, disk.FsckOutput);
        Assert.True(disk.ManifestFiles >= synced, $"{disk.ManifestFiles} files, {synced} synced");
        Assert.Empty(disk.BadFiles);
    }

    /// <summary>Waits until the process is in state T (stopped by its own SIGSTOP at the fault step).</summary>
    private static async Task WaitStoppedAsync(Process process)
    {
        var deadline = DateTime.UtcNow.AddMinutes(3);
        while (DateTime.UtcNow < deadline)
        {
            if (BackupdProcess.IsStopped(process.Id)) return;
            if (process.HasExited) throw new InvalidOperationException($"backupd exited {process.ExitCode} before the fault step");
            await Task.Delay(100);
        }
        throw new TimeoutException("backupd never reached mid-copy");
    }
}
