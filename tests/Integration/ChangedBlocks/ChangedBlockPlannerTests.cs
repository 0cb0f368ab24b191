using System.Globalization;
using Backupd.Daemon.ChangedBlocks;
using Backupd.Integration.Fixtures;
using Backupd.Storage.ChangedBlocks;
using Backupd.Storage.Repository;

namespace Backupd.Integration.ChangedBlocks;

/// <summary>
/// The changed-block planner on real qcow2 files, qemu-nbd, libnbd and qemu-img: a persistent bitmap added with
/// qemu-img records the writes qemu-io makes through QEMU's block layer (as a running guest's writes are recorded).
/// Our dirty map equals <c>nbdinfo --map</c>; a copy of the old file patched with only the planned blocks equals the new
/// file byte for byte; bitmaps that cannot be trusted give a reason, not a plan.
/// </summary>
[Trait("Category", "Integration")]
public sealed class ChangedBlockPlannerTests : IDisposable
{
    private const int Bs = 64 << 10;
    private readonly string _dir = Path.Combine("/var/tmp", $"bkd-cbt-{Guid.NewGuid():N}"[..20]);

    public ChangedBlockPlannerTests() => Directory.CreateDirectory(_dir);

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    private string P(string name) => Path.Combine(_dir, name);

    private static Task<string> QemuIo(string image, params string[] commands) =>
        Tools.RunAsync("qemu-io", [.. commands.SelectMany(c => new[] { "-c", c }), "-f", "qcow2", image]);

    /// <summary>A 64 MiB qcow2 with data in scattered clusters; bitmap <paramref name="bitmap"/> added after the data, then a copy "old".</summary>
    private async Task<string> ImageWithBitmap(string bitmap = "b0", string granularity = "64K")
    {
        var image = P("disk.qcow2");
        await Tools.RunAsync("qemu-img", "create", "-q", "-f", "qcow2", image, "64M");
        var rng = new Random(7);
        var writes = Enumerable.Range(0, 120).Select(_ => $"write -P {rng.Next(1, 255)} {rng.Next(0, 1024) * (long)Bs} 64k").ToArray();
        await QemuIo(image, writes);
        await Tools.RunAsync("qemu-img", "bitmap", "--add", "-g", granularity, image, bitmap);
        File.Copy(image, P("old.qcow2"));
        return image;
    }

    /// <summary>Rewrites in place, allocates new clusters, a 4 KiB write inside a cluster, write-zeroes and a discard.</summary>
    private static Task<string> GuestWrites(string image) => QemuIo(image,
        "write -P 201 0 64k", "write -P 202 5m 128k", "write -P 203 40m 64k", "write -P 204 63m 192k",
        "write -P 205 20484k 4k", "write -z 10m 64k", "discard 30m 64k", "write -P 206 33m 64k");

    private static List<(long Offset, long Length)> NbdinfoDirty(string socket, string bitmap, string output)
    {
        var result = new List<(long, long)>();
        foreach (var line in output.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
        {
            var f = line.Split(' ', StringSplitOptions.RemoveEmptyEntries);
            var (offset, length, flags) = (long.Parse(f[0], CultureInfo.InvariantCulture), long.Parse(f[1], CultureInfo.InvariantCulture), int.Parse(f[2], CultureInfo.InvariantCulture));
            if ((flags & 1) == 0) continue;
            if (result.Count > 0 && result[^1].Item1 + result[^1].Item2 == offset) result[^1] = (result[^1].Item1, result[^1].Item2 + length);
            else result.Add((offset, length));
        }
        Assert.True(result.Count > 0, $"nbdinfo --map=qemu:dirty-bitmap:{bitmap} on {socket} showed no dirty extent: {output}");
        return result;
    }

    [Fact]
    public async Task Our_dirty_map_equals_nbdinfo_and_the_plan_patches_the_old_file_into_the_new_one()
    {
        var image = await ImageWithBitmap();
        await GuestWrites(image);

        // Our reader through our export, then nbdinfo through a second export of the same file.
        DirtyClusters ours;
        await using (var export = await QemuNbdExport.StartAsync(image, "b0", null, CancellationToken.None))
        {
            ours = DirtyMapReader.Read(export.SocketPath, "b0", CancellationToken.None);
        }
        var socket = P("nbdinfo.sock");
        await Tools.RunAsync("qemu-nbd", "-r", "-f", "qcow2", "--bitmap=b0", "-k", socket, "--fork", "--pid-file", P("nbdinfo.pid"), image);
        var map = await Tools.RunAsync("nbdinfo", "--map=qemu:dirty-bitmap:b0", $"nbd+unix:///?socket={socket}");
        Assert.Equal(NbdinfoDirty(socket, "b0", map), ours.Ranges.ToList());
        Assert.Equal(64L << 20, ours.CoveredLength);

        int? pid = null;
        var outcome = await new ChangedBlockPlanner().PlanAsync(image, "b0", Bs, p => pid = p, CancellationToken.None);
        Assert.True(outcome.Plan is not null, outcome.FullReadReason);
        Assert.NotNull(pid);
        Assert.False(Directory.Exists($"/proc/{pid}") && QemuNbdExport.IsQemuNbd(pid.Value), "qemu-nbd must be gone when the planner returns");
        var plan = outcome.Plan!;

        var length = new FileInfo(image).Length;
        Assert.Equal(length, plan.FileLength);
        Assert.InRange(plan.BlocksToRead, 1, plan.BlockCount / 3); // far less than the file
        Assert.True(plan.BytesToRead >= ours.DirtyBytes - (64 << 10) - (64 << 10), "the plan reads at least the dirty data (discarded and zeroed clusters hold none)");

        // Patch a copy of the old file with exactly the planned blocks: it must equal the new file.
        var patched = P("patched.qcow2");
        File.Copy(P("old.qcow2"), patched);
        using (var src = File.OpenHandle(image))
        using (var dst = File.OpenHandle(patched, FileMode.Open, FileAccess.ReadWrite))
        {
            var buffer = new byte[Bs];
            for (long b = 0; b < plan.BlockCount; b++)
            {
                if (!plan.MustRead(b)) continue;
                var n = RandomAccess.Read(src, buffer, b * Bs);
                RandomAccess.Write(dst, buffer.AsSpan(0, n), b * Bs);
            }
            RandomAccess.SetLength(dst, length);
        }
        var (code, _, stderr) = await Tools.TryRunAsync("cmp", patched, image);
        Assert.True(code == 0, $"cmp {patched} {image}: {stderr}");

        // And through the repository: the old file backed up fully, the new one incrementally, restored, compared.
        using var repo = BackupRepository.Open(P("repo"));
        repo.BlockSize = Bs;
        RestorePointInfo p0;
        using (var s = repo.BeginBackup("g", "vm-g"))
        {
            await s.AddFileAsync("vda", P("old.qcow2"), new SourceFileInfo(P("old.qcow2"), "qcow2", null, 64 << 20), null, CancellationToken.None);
            p0 = s.Commit();
        }
        FileVersionInfo file;
        RestorePointInfo p1;
        using (var s = repo.BeginBackup("g", "vm-g"))
        {
            file = await s.AddFileAsync("vda", image, new SourceFileInfo(image, "qcow2", null, 64 << 20), null, CancellationToken.None,
                changed: new ChangedBlockRead(plan, false, p0.PointId));
            p1 = s.Commit();
        }
        Assert.Equal(ReadModes.Incremental, file.ReadMode);
        Assert.InRange(file.BytesRead, 1, plan.BytesToRead);
        await repo.RestoreFileAsync(p1.PointId, "vda", P("restored.qcow2"), null, CancellationToken.None);
        (code, _, stderr) = await Tools.TryRunAsync("cmp", P("restored.qcow2"), image);
        Assert.True(code == 0, $"cmp restored new: {stderr}");
        Assert.True((await repo.VerifyAsync(null, null, null, CancellationToken.None)).Ok);

        await QemuIo(image, "write -P 9 60m 4k"); // no qemu-nbd holds the image any more: the write lock (a commit's) is free
    }

    [Fact]
    public async Task A_missing_disabled_coarse_or_in_use_bitmap_gives_a_reason_and_no_plan()
    {
        var image = await ImageWithBitmap();
        await Tools.RunAsync("qemu-img", "bitmap", "--add", "-g", "1M", image, "coarse");
        await Tools.RunAsync("qemu-img", "bitmap", "--add", "--disable", image, "off");
        var planner = new ChangedBlockPlanner();
        async Task<string> Reason(string bitmap)
        {
            var started = false;
            var o = await planner.PlanAsync(image, bitmap, Bs, _ => started = true, CancellationToken.None);
            Assert.Null(o.Plan);
            Assert.False(started, "no export for a bitmap that fails validation");
            return o.FullReadReason!;
        }
        Assert.Contains("bitmap 'nosuch' is missing", await Reason("nosuch"));
        Assert.Contains("coarser than the repository block size", await Reason("coarse"));
        Assert.Contains("disabled", await Reason("off"));

        // QEMU killed with the image open: the bitmap stays flagged in-use (inconsistent).
        var io = System.Diagnostics.Process.Start("qemu-io", ["-f", "qcow2", "-c", "write -P 3 0 64k", "-c", "sleep 60000", image])!;
        try
        {
            for (var i = 0; i < 200 && !(await Tools.RunAsync("qemu-img", "info", "-U", image)).Contains("in-use", StringComparison.Ordinal); i++)
            {
                await Task.Delay(100);
            }
        }
        finally
        {
            io.Kill(); // SIGKILL: no chance to store the bitmap
            await io.WaitForExitAsync();
        }
        Assert.Contains("in-use", await Reason("b0"));
        // qemu-nbd itself refuses it too, and says so: that message would be the reason if the bitmap broke after validation.
        var e = await Assert.ThrowsAsync<QemuNbdException>(() => QemuNbdExport.StartAsync(image, "b0", null, CancellationToken.None));
        Assert.Contains("inconsistent", e.Message);
    }

    [Fact]
    public async Task Libnbd_errors_carry_the_call_the_message_and_errno_and_the_planner_turns_failures_into_reasons()
    {
        var e = Assert.Throws<Backupd.Daemon.ChangedBlocks.Native.NbdException>(() => DirtyMapReader.Read(P("no-such.sock"), "b0", CancellationToken.None));
        Assert.Equal("nbd_connect_unix", e.Operation);
        Assert.Equal(2, e.Errno); // ENOENT
        Assert.Contains("nbd_connect_unix failed", e.Message);

        var o = await new ChangedBlockPlanner().PlanAsync(P("missing.qcow2"), "b0", Bs, null, CancellationToken.None);
        Assert.Null(o.Plan);
        Assert.Contains("missing.qcow2", o.FullReadReason);
    }

    [Fact]
    public async Task A_raw_image_gives_a_reason()
    {
        var raw = P("disk.raw");
        await Tools.RunAsync("qemu-img", "create", "-q", "-f", "raw", raw, "8M");
        var o = await new ChangedBlockPlanner().PlanAsync(raw, "b0", Bs, null, CancellationToken.None);
        Assert.Null(o.Plan);
        Assert.Contains("not qcow2", o.FullReadReason);
    }

    [Fact]
    public async Task A_leftover_export_is_stopped_and_other_processes_are_left_alone()
    {
        var image = await ImageWithBitmap();
        await Tools.RunAsync("qemu-nbd", "-r", "-f", "qcow2", "--persistent", "-k", P("left.sock"), "--fork", "--pid-file", P("left.pid"), image);
        var pid = int.Parse(File.ReadAllText(P("left.pid")).Trim(), CultureInfo.InvariantCulture);
        Assert.True(QemuNbdExport.IsQemuNbd(pid));
        var (code, _, stderr) = await Tools.TryRunAsync("qemu-io", "-f", "qcow2", "-c", "write 0 4k", image);
        Assert.True(code != 0, "qemu-nbd holds a lock on the image while it serves");
        Assert.Contains("lock", stderr, StringComparison.OrdinalIgnoreCase);

        ChangedBlockPlanner.StopLeftoverExport(pid);
        Assert.False(QemuNbdExport.IsQemuNbd(pid));
        await QemuIo(image, "write 0 4k"); // the lock is gone

        using var sleeper = System.Diagnostics.Process.Start("sleep", "30")!;
        try
        {
            ChangedBlockPlanner.StopLeftoverExport(sleeper.Id);
            Assert.False(sleeper.HasExited, "a pid that is not qemu-nbd (exited and reused) must not be signalled");
        }
        finally
        {
            sleeper.Kill();
        }
    }
}
