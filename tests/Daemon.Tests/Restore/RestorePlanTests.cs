using Backupd.Daemon.Cli;
using Backupd.Daemon.Restore;
using Backupd.Storage.Catalog;

namespace Backupd.Daemon.Tests.Restore;

public sealed class RestorePlanTests
{
    private static RestorePointFileRow File(string disk, int depth, string format = "qcow2") => new()
    {
        FileKey = $"{disk}.{depth}", Disk = disk, Depth = depth, Format = format, SourcePath = $"/img/{disk}-{depth}", VirtualSize = 1 << 20,
        BackingFile = depth == 0 ? $"/img/{disk}-1" : null, Digest = "d",
    };

    [Fact]
    public void Chains_are_ordered_top_first_and_named_by_disk_and_depth()
    {
        var plan = RestorePlan.Build("p", [File("vdb", 0, "raw"), File("vda", 1), File("vda", 0)], null);

        Assert.Equal(["vda", "vdb"], plan.Select(d => d.Disk));
        Assert.Equal(["vda.qcow2", "vda.1.qcow2"], plan[0].Chain.Select(f => f.FileName));
        Assert.Equal("vdb.raw", plan[1].Top.FileName);
    }

    [Fact]
    public void A_disk_filter_keeps_only_the_named_disks_and_an_unknown_one_is_not_found()
    {
        var files = new[] { File("vda", 0), File("vdb", 0) };
        Assert.Equal(["vdb"], RestorePlan.Build("p", files, ["vdb"]).Select(d => d.Disk));

        var error = Assert.Throws<RestoreException>(() => RestorePlan.Build("p", files, ["vdz"]));
        Assert.Equal(FailureKind.NotFound, error.Kind);
        Assert.Contains("vda, vdb", error.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("../etc")]
    [InlineData("a/b")]
    [InlineData(".hidden")]
    [InlineData("vda'; rm -rf /")]
    [InlineData("")]
    public void Disk_names_that_are_not_plain_are_refused(string disk)
    {
        var error = Assert.Throws<RestoreException>(() => RestorePlan.Build("p", [File(disk, 0)], null));
        Assert.Equal(FailureKind.Usage, error.Kind);
    }

    [Fact]
    public void A_gap_in_a_chain_is_refused()
    {
        Assert.Throws<RestoreException>(() => RestorePlan.Build("p", [File("vda", 0), File("vda", 2)], null));
    }
}
