using Backupd.Daemon;
using System.Text.Json;
using Backupd.Daemon.Chains;

namespace Backupd.Daemon.Tests.Chains;

/// <summary>The pure part of a shorten: which job on which layers, and when another domain stands in the way.</summary>
public sealed class ChainPlannerTests
{
    private const string Self = "11111111-1111-1111-1111-111111111111";

    /// <summary>[3] base &lt;- [2] sn1 &lt;- [1] sn2 &lt;- [0] cur, with optional users of layers by index.</summary>
    private static DiskChain Chain(int depth, params (int Layer, string Domain)[] users)
    {
        var names = new[] { "cur", "sn2", "sn1", "base", "b4", "b5" };
        var layers = Enumerable.Range(0, depth).Select(i => new ChainLayer(i, $"/images/{names[i]}.qcow2", "qcow2", 1 << 30, 1 << 20, 1 << 20,
            i + 1 < depth ? $"/images/{names[i + 1]}.qcow2" : null, i + 1 < depth ? "qcow2" : null, "1.1", [], false)
        {
            UsedBy = [.. users.Where(u => u.Layer == i).Select(u => new ImageUser(u.Domain, Guid.NewGuid().ToString(), "persistent", "vda"))],
        }).ToList();
        return new DiskChain("vda", layers);
    }

    [Fact]
    public void Commit_to_depth_one_is_an_active_commit_of_everything_into_the_base()
    {
        var plan = ChainPlanner.Plan(Chain(4), ShortenMethod.Commit, 1, null, Self);
        Assert.True(plan.ActiveCommit);
        Assert.Equal(3, plan.BaseIndex);
        Assert.Equal([0, 1, 2], plan.MergedAway);
        Assert.Equal(3, plan.NewActive);
        Assert.Equal(1, plan.DepthAfter);
    }

    [Theory]
    [InlineData(2, 3, new[] { 1, 2 })]
    [InlineData(3, 2, new[] { 1 })]
    public void Commit_to_depth_n_over_one_keeps_the_active_layer(int depth, int baseIndex, int[] merged)
    {
        var plan = ChainPlanner.Plan(Chain(4), ShortenMethod.Commit, depth, null, Self);
        Assert.False(plan.ActiveCommit);
        Assert.Equal(1, plan.TopIndex);
        Assert.Equal(baseIndex, plan.BaseIndex);
        Assert.Equal(merged, plan.MergedAway);
        Assert.Equal(0, plan.NewActive);
        Assert.Equal(depth, plan.DepthAfter);
    }

    [Theory]
    [InlineData(1, null, new[] { 1, 2, 3 })]
    [InlineData(2, 3, new[] { 1, 2 })]
    [InlineData(3, 2, new[] { 1 })]
    public void Pull_copies_the_layers_above_the_new_backing_file_into_the_active_layer(int depth, int? backing, int[] merged)
    {
        var plan = ChainPlanner.Plan(Chain(4), ShortenMethod.Pull, depth, null, Self);
        Assert.Equal(backing, plan.BaseIndex);
        Assert.Equal(merged, plan.MergedAway);
        Assert.Equal(0, plan.WrittenInto);
        Assert.Equal(depth, plan.DepthAfter);
    }

    [Fact]
    public void Into_a_layer_by_index_or_path_commits_everything_above_it()
    {
        var byIndex = ChainPlanner.Plan(Chain(4), ShortenMethod.Commit, null, "[2]", Self);
        var byPath = ChainPlanner.Plan(Chain(4), ShortenMethod.Commit, null, "/images/sn1.qcow2", Self);
        Assert.Equal(byIndex with { MergedAway = [] }, byPath with { MergedAway = [] });
        Assert.Equal(byIndex.MergedAway, byPath.MergedAway);
        Assert.True(byIndex.ActiveCommit);
        Assert.Equal([0, 1], byIndex.MergedAway);
        Assert.Equal(2, byIndex.DepthAfter);
    }

    [Fact]
    public void Commit_into_a_template_another_domain_uses_is_refused_naming_it_and_pull_is_allowed()
    {
        var chain = Chain(2, (1, "clone-b"));
        var e = Assert.Throws<ChainRefusedException>(() => ChainPlanner.Plan(chain, ShortenMethod.Commit, 1, null, Self));
        Assert.Equal(FailureKind.SharedLayer, e.Kind);
        Assert.Contains("clone-b", e.Message, StringComparison.Ordinal);
        Assert.Contains("--method pull", e.Message, StringComparison.Ordinal);
        var pull = ChainPlanner.Plan(chain, ShortenMethod.Pull, 1, null, Self);
        Assert.Equal([1], pull.MergedAway);
    }

    [Fact]
    public void A_user_of_a_layer_above_the_one_written_into_also_refuses_the_commit_but_one_below_does_not()
    {
        // Another domain on sn2 reads through sn1: committing into sn1 would change its disk.
        Assert.Throws<ChainRefusedException>(() => ChainPlanner.Plan(Chain(4, (1, "other")), ShortenMethod.Commit, 3, null, Self));
        // Another domain on base only: committing sn2 into sn1 leaves base untouched.
        var plan = ChainPlanner.Plan(Chain(4, (3, "other")), ShortenMethod.Commit, 3, null, Self);
        Assert.Equal(2, plan.WrittenInto);
    }

    [Theory]
    [InlineData(4, null, 0)]   // already that shallow
    [InlineData(0, null, 2)]
    [InlineData(null, "[9]", 2)]
    [InlineData(null, "/images/nope.qcow2", 2)]
    [InlineData(null, "[0]", 0)]
    public void Bad_or_empty_requests_are_refused_with_their_exit_code(int? depth, string? into, int exitCode)
    {
        var e = Assert.Throws<ChainRefusedException>(() => ChainPlanner.Plan(Chain(4), ShortenMethod.Commit, depth, into, Self));
        Assert.Equal(exitCode, Backupd.Daemon.Cli.ExitCodes.For(e.Kind));
    }

    [Fact]
    public void A_missing_backing_file_refuses_every_plan()
    {
        var chain = Chain(3);
        chain = chain with { Layers = [.. chain.Layers.Take(2), chain.Layers[2] with { Missing = true }] };
        var e = Assert.Throws<ChainRefusedException>(() => ChainPlanner.Plan(chain, ShortenMethod.Pull, 1, null, Self));
        Assert.Contains("missing", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Warnings_name_depth_over_the_limit_qcow2_v2_and_bitmaps_in_use()
    {
        var layers = Chain(4).Layers.ToList();
        layers[3] = layers[3] with { Compat = "0.10", BitmapsInUse = ["backupd-1"] };
        var warnings = ChainInspector.Warn(layers, 3);
        Assert.Contains(warnings, w => w.Contains("max-depth 3", StringComparison.Ordinal));
        Assert.Contains(warnings, w => w.Contains("version 2", StringComparison.Ordinal));
        Assert.Contains(warnings, w => w.Contains("backupd-1", StringComparison.Ordinal));
        Assert.Empty(ChainInspector.Warn(Chain(2).Layers, 3));
    }

    [Fact]
    public void Qemu_img_json_is_read_with_sizes_backing_format_compat_and_bitmaps()
    {
        var json = """
            {"filename": "/images/cur.qcow2", "format": "qcow2", "virtual-size": 1073741824, "actual-size": 200704,
             "backing-filename": "sn2.qcow2", "full-backing-filename": "/images/sn2.qcow2", "backing-filename-format": "qcow2",
             "format-specific": {"type": "qcow2", "data": {"compat": "1.1", "bitmaps": [{"flags": ["in-use", "auto"], "name": "b1"}, {"flags": ["auto"], "name": "b2"}]}}}
            """;
        var layer = ImageChainReader.Parse(JsonDocument.Parse(json).RootElement, 0);
        Assert.Equal("/images/cur.qcow2", layer.Path);
        Assert.Equal(1L << 30, layer.VirtualSize);
        Assert.Equal(200704, layer.AllocatedBytes);
        Assert.Equal("/images/sn2.qcow2", layer.BackingFile);
        Assert.Equal("qcow2", layer.BackingFormat);
        Assert.Equal("1.1", layer.Compat);
        Assert.Equal(["b1"], layer.BitmapsInUse);
    }
}
