using Backupd.Daemon.Libvirt;
using Backupd.Daemon.Workflow;
using Backupd.Policies.Model;

namespace Backupd.Daemon.Tests.Workflow;

/// <summary>
/// A backup never succeeds with fewer bytes than the disk holds: the size the copy measured is checked against
/// libvirt's and qemu-img's sizes (the defect: a block device measured as 0 bytes was stored empty and the run succeeded).
/// </summary>
[Collection("Faults")]
// Integration: the workflow takes the real host-wide run lock in /run/lock/backupd (root-owned), which a non-root run cannot open.
[Trait("Category", "Integration")]
public sealed class StoredSizeTests : IDisposable
{
    private const long MiB = 1 << 20;
    private readonly string dir = Directory.CreateTempSubdirectory("bkd-size-").FullName;
    private readonly FakeHypervisor hv;
    private readonly FakeImages images;
    private readonly FakeTarget target;

    public StoredSizeTests()
    {
        hv = new FakeHypervisor(dir);
        images = new FakeImages(hv.Calls);
        target = new FakeTarget(hv.Calls);
        Faults.Spec = null;
    }

    public void Dispose() => Directory.Delete(dir, recursive: true);

    private Task<BackupResult> Run() =>
        new BackupWorkflow(hv, images, target, new WorkflowOptions { StateDirectory = Path.Combine(dir, "state"), MinimumOverlayFreeBytes = 1, CommitRetryDelay = TimeSpan.Zero }, new ListLogger())
            .RunAsync(new BackupRequest(hv.Name, [], [], QuiesceMode.Off), CancellationToken.None);

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public async Task A_size_probe_that_says_0_bytes_fails_the_run_and_publishes_no_point(bool running)
    {
        if (!running) hv.Id = null;
        var vdb = hv.AddDisk("vdb", "raw");
        target.StoredSize = _ => 0; // what RandomAccess.GetLength said for a block device

        var result = await Run();

        Assert.Equal(RunOutcome.Failed, result.Outcome);
        Assert.False(target.Committed);
        Assert.Null(result.RestorePointId);
        Assert.Contains("disk 'vdb'", result.Error, StringComparison.Ordinal);
        Assert.Contains($"has 0 bytes but libvirt reports {3 * MiB} bytes", result.Error, StringComparison.Ordinal);
        Assert.Contains(vdb.Chain[0].Path, result.Error, StringComparison.Ordinal);
        if (running) Assert.Contains("pivot vdb", hv.Calls); // the guest still goes back to its base
    }

    [Fact]
    public async Task A_raw_disk_whose_capacity_libvirt_reports_larger_than_stored_fails()
    {
        var vdb = hv.AddDisk("vdb", "raw");
        vdb.Sizes = new BlockSizes(64 * MiB, 64 * MiB, 3 * MiB); // a device of 64 MiB, its copy 3 MiB

        var result = await Run();

        Assert.Equal(RunOutcome.Failed, result.Outcome);
        Assert.False(target.Committed);
        Assert.Contains($"has {3 * MiB} bytes but libvirt reports a capacity of {64 * MiB} bytes for the raw disk", result.Error, StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_qcow2_chain_whose_virtual_size_is_not_libvirts_capacity_fails()
    {
        var vda = hv.AddDisk("vda");
        vda.Sizes = new BlockSizes(8 * MiB, 3 * MiB, 3 * MiB);

        var result = await Run();

        Assert.Equal(RunOutcome.Failed, result.Outcome);
        Assert.Contains($"qemu-img reports a virtual size of {3 * MiB} bytes for {vda.Chain[0].Path} but libvirt a capacity of {8 * MiB}", result.Error, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Sizes_that_agree_succeed()
    {
        hv.AddDisk("vda");
        hv.AddDisk("vdb", "raw");

        var result = await Run();

        Assert.Equal(RunOutcome.Succeeded, result.Outcome);
        Assert.True(target.Committed);
    }

    private static readonly BlockSizes Device64 = new(64 * MiB, 0, 64 * MiB);

    public static TheoryData<string, string, bool, long, long, string?> Cases => new()
    {
        // name, format, encrypted, virtual size (qemu-img), stored size, expected problem fragment (null: fine)
        { "raw block device, complete", "raw", false, 64 * MiB, 64 * MiB, null },
        { "raw block device, stored as 0 bytes", "raw", false, 64 * MiB, 0, "has 0 bytes but libvirt reports 67108864 bytes (physical)" },
        { "raw, one block short", "raw", false, 64 * MiB, (64 * MiB) - 4096, "libvirt reports 67108864 bytes (physical)" },
        { "raw, longer than the device", "raw", false, 64 * MiB, (64 * MiB) + 4096, "capacity of 67108864 bytes for the raw disk" },
        { "qcow2 on the device, complete", "qcow2", false, 64 * MiB, 64 * MiB, null },
        { "qcow2 on the device, short", "qcow2", false, 64 * MiB, 1 * MiB, "libvirt reports 67108864 bytes (physical)" },
        { "LUKS raw: the payload is smaller than the device", "raw", true, 64 * MiB, 64 * MiB, null },
    };

    [Theory]
    [MemberData(nameof(Cases))]
    public void The_check_compares_with_libvirt_and_qemu_img(string name, string format, bool encrypted, long virtualSize, long stored, string? problem)
    {
        var sizes = encrypted ? Device64 with { Capacity = (64 * MiB) - (2 * MiB) } : Device64;
        var chain = new[] { new ChainImage("/dev/vg/lv", format, null, virtualSize) };

        var got = StoredSizeCheck.Problem("vdb", encrypted, sizes, chain, [stored]);

        if (problem is null) Assert.True(got is null, $"{name}: {got}");
        else Assert.Contains(problem, got ?? $"{name}: no problem found", StringComparison.Ordinal);
    }

    [Fact]
    public void A_backing_file_stored_empty_is_found_too()
    {
        var chain = new[] { new ChainImage("/i/top.qcow2", "qcow2", "/i/base.raw", 8 * MiB), new ChainImage("/i/base.raw", "raw", null, 8 * MiB) };

        var got = StoredSizeCheck.Problem("vda", false, new BlockSizes(8 * MiB, MiB, MiB), chain, [MiB, 0]);

        Assert.Equal($"disk 'vda': the stored copy of /i/base.raw (vda.1) has 0 bytes but qemu-img reports a virtual size of {8 * MiB} bytes for the raw image; the copy is incomplete, the backup fails", got);
    }
}
