using Backupd.Storage.ChangedBlocks;

namespace Backupd.Storage.Tests.ChangedBlocks;

public class DirtyClustersTests
{
    [Fact]
    public void Adjoining_dirty_extents_merge_and_queries_see_range_edges()
    {
        var d = new DirtyClusters.Builder().Add(0, 100, false).Add(100, 50, true).Add(150, 50, true).Add(200, 100, false).Add(300, 10, true).Build(310);
        Assert.Equal(new[] { (100L, 100L), (300L, 10L) }, d.Ranges.ToArray());
        Assert.Equal(110, d.DirtyBytes);
        Assert.False(d.AnyDirty(0, 100));
        Assert.True(d.AnyDirty(99, 2));
        Assert.True(d.AnyDirty(199, 1));
        Assert.False(d.AnyDirty(200, 100));
        Assert.True(d.AnyDirty(250, 51));
        Assert.False(d.AnyDirty(5, 0));
    }

    [Fact]
    public void Outside_the_map_counts_as_dirty()
    {
        var d = new DirtyClusters.Builder().Add(0, 100, false).Build(100);
        Assert.True(d.AnyDirty(90, 20));
        Assert.True(d.AnyDirty(-1, 5));
        Assert.False(d.AnyDirty(0, 100));
    }

    [Fact]
    public void A_map_with_gaps_or_the_wrong_size_is_refused()
    {
        Assert.Throws<ArgumentException>(() => new DirtyClusters.Builder().Add(0, 10, true).Add(20, 10, false));
        Assert.Throws<ArgumentOutOfRangeException>(() => new DirtyClusters.Builder().Add(0, 0, true));
        var e = Assert.Throws<InvalidOperationException>(() => new DirtyClusters.Builder().Add(0, 10, true).Build(20));
        Assert.Contains("covers 10 bytes but the disk has 20", e.Message);
    }
}
