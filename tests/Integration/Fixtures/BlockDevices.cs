using System.Globalization;

namespace Backupd.Integration.Fixtures;

/// <summary>A loop device (losetup) over a sparse file of its own, detached and deleted on dispose.</summary>
public sealed class LoopDevice : IAsyncDisposable
{
    public string Path { get; }
    public string BackingFile { get; }

    private LoopDevice(string path, string backingFile)
    {
        Path = path;
        BackingFile = backingFile;
    }

    /// <summary>Over a new sparse file of <paramref name="bytes"/> (or, with <paramref name="offset"/>, over a range of an existing file or device).</summary>
    public static async Task<LoopDevice> CreateAsync(long bytes, string? over = null, long offset = 0)
    {
        await Requirements.LibvirtAndQemuAsync();
        var file = over ?? System.IO.Path.Combine(TestVm.ImageRoot, $"loop-{Guid.NewGuid():N}.img");
        if (over is null)
        {
            Directory.CreateDirectory(TestVm.ImageRoot);
            await using (var f = new FileStream(file, FileMode.CreateNew)) f.SetLength(bytes);
        }
        try
        {
            // Over a file of its own the device follows the file's size (ResizeAsync); over a range it is limited to it.
            string[] range = over is null ? [] : ["--offset", Invariant(offset), "--sizelimit", Invariant(bytes)];
            var device = (await Tools.RunAsync("losetup", ["--find", "--show", .. range, file])).Trim();
            return new LoopDevice(device, over is null ? file : "");
        }
        catch
        {
            if (over is null) File.Delete(file);
            throw;
        }
    }

    /// <summary>Grows the backing file and tells the loop driver (losetup -c): the device gets the new size.</summary>
    public async Task ResizeAsync(long bytes)
    {
        await using (var f = new FileStream(BackingFile, FileMode.Open)) f.SetLength(bytes);
        await Tools.RunAsync("losetup", "-c", Path);
    }

    internal static string Invariant(long n) => n.ToString(CultureInfo.InvariantCulture);

    public async ValueTask DisposeAsync()
    {
        await Tools.TryRunAsync("losetup", "-d", Path);
        if (BackingFile.Length > 0) File.Delete(BackingFile);
    }
}

/// <summary>
/// An LVM logical volume in a volume group of its own built on a loop device, at /dev/VG/LV. Where the kernel
/// has device-mapper, the LV is activated the normal way (lvcreate; /dev/VG/LV links to /dev/dm-N). Where it has
/// not (this CI machine's kernel: /dev/mapper/control "No such device"), LVM still writes the real metadata
/// (--driverloaded n), and the LV's single linear segment is mapped with a loop device at the offset LVM
/// allocated, which is the mapping dm-linear would make; /dev/VG/LV then links to that loop device as udev
/// links it to dm-N. Dispose removes LV, VG, PV and loop devices even after a failure.
/// </summary>
public sealed class LogicalVolume : IAsyncDisposable
{
    public string VolumeGroup { get; }
    public string Name { get; } = "lv0";
    public string Path => $"/dev/{VolumeGroup}/{Name}";
    /// <summary>True when the LV was activated by device-mapper; false when mapped by a loop device.</summary>
    public bool DeviceMapper { get; private set; }

    private readonly LoopDevice pv;
    private LoopDevice? mapping;

    private LogicalVolume(string vg, LoopDevice pv)
    {
        VolumeGroup = vg;
        this.pv = pv;
    }

    private static readonly string[] Quiet = ["DM_DISABLE_UDEV=1", "LVM_SUPPRESS_FD_WARNINGS=1"];

    private static Task<string> Lvm(params string[] args) => Tools.RunAsync("env", [.. Quiet, .. args]);

    public static async Task<LogicalVolume> CreateAsync(long bytes)
    {
        if (!File.Exists("/usr/sbin/lvcreate"))
            throw new InvalidOperationException($"/usr/sbin/lvcreate is missing: apt-get install -y lvm2 ({Tools.SetupHint})");
        var pv = await LoopDevice.CreateAsync(bytes + (8 << 20)); // room for the PV label and metadata area
        var lv = new LogicalVolume($"bkd{Guid.NewGuid():N}"[..12], pv);
        try
        {
            await Lvm("pvcreate", "-q", pv.Path);
            await Lvm("vgcreate", "-q", lv.VolumeGroup, pv.Path);
            lv.DeviceMapper = (await Tools.TryRunAsync("dmsetup", "version")).ExitCode == 0;
            if (lv.DeviceMapper)
            {
                await Lvm("lvcreate", "-q", "-y", "-Zn", "-L", $"{bytes}b", "-n", lv.Name, lv.VolumeGroup);
                await Lvm("lvchange", "-ay", $"{lv.VolumeGroup}/{lv.Name}");
                await Lvm("vgmknodes", lv.VolumeGroup); // /dev/VG/LV without udev
            }
            else
            {
                await Lvm("lvcreate", "--driverloaded", "n", "-q", "-y", "-an", "-Zn", "-L", $"{bytes}b", "-n", lv.Name, lv.VolumeGroup);
                await lv.MapWithLoopAsync(bytes);
            }
            if (!File.Exists(lv.Path)) throw new InvalidOperationException($"{lv.Path} did not appear");
            return lv;
        }
        catch
        {
            await lv.DisposeAsync();
            throw;
        }
    }

    /// <summary>The LV's one segment (PV extents a..b) as a loop device over the PV at pe_start + a * extent size.</summary>
    private async Task MapWithLoopAsync(long bytes)
    {
        var segment = (await Lvm("lvs", "--noheadings", "--units", "b", "--nosuffix", "-o", "seg_pe_ranges,vg_extent_size", $"{VolumeGroup}/{Name}")).Trim().Split(' ', StringSplitOptions.RemoveEmptyEntries);
        var ranges = segment[0].Split(':');
        if (ranges.Length != 2 || ranges[0] != pv.Path)
            throw new InvalidOperationException($"unexpected LV segment '{segment[0]}' (expected one linear range on {pv.Path})");
        var firstExtent = long.Parse(ranges[1].Split('-')[0], CultureInfo.InvariantCulture);
        var extentSize = long.Parse(segment[1], CultureInfo.InvariantCulture);
        var peStart = long.Parse((await Lvm("pvs", "--noheadings", "--units", "b", "--nosuffix", "-o", "pe_start", pv.Path)).Trim(), CultureInfo.InvariantCulture);
        mapping = await LoopDevice.CreateAsync(bytes, over: pv.Path, offset: peStart + (firstExtent * extentSize));
        Directory.CreateDirectory($"/dev/{VolumeGroup}");
        File.CreateSymbolicLink(Path, $"../{System.IO.Path.GetFileName(mapping.Path)}");
    }

    public async ValueTask DisposeAsync()
    {
        if (mapping is not null)
        {
            File.Delete(Path);
            await mapping.DisposeAsync();
        }
        if (DeviceMapper) await Tools.TryRunAsync("env", [.. Quiet, "lvchange", "-an", $"{VolumeGroup}/{Name}"]);
        await Tools.TryRunAsync("env", [.. Quiet, "lvremove", "--driverloaded", DeviceMapper ? "y" : "n", "-q", "-y", $"{VolumeGroup}/{Name}"]);
        await Tools.TryRunAsync("env", [.. Quiet, "vgremove", "-q", "-y", VolumeGroup]);
        await Tools.TryRunAsync("env", [.. Quiet, "pvremove", "-q", pv.Path]);
        if (Directory.Exists($"/dev/{VolumeGroup}")) Directory.Delete($"/dev/{VolumeGroup}", recursive: true);
        await pv.DisposeAsync();
    }
}
