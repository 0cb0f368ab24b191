using Backupd.Storage.ChangedBlocks;

namespace Backupd.Storage.Tests.ChangedBlocks;

public class BitmapCheckTests
{
    private static string Info(string bitmaps, string format = "qcow2", string extra = "") => $$"""
        { "virtual-size": 67108864, "filename": "t.qcow2", "cluster-size": 65536, "format": "{{format}}",
          "format-specific": { "type": "qcow2", "data": { "compat": "1.1", {{extra}} "bitmaps": [ {{bitmaps}} ], "refcount-bits": 16, "corrupt": false } },
          "dirty-flag": false }
        """;

    private const string B0 = """{ "flags": ["auto"], "name": "b0", "granularity": 65536 }""";

    [Fact]
    public void An_enabled_consistent_bitmap_is_usable()
    {
        var v = BitmapCheck.Validate(Info(B0), "b0", 65536);
        Assert.True(v.Usable, v.Reason);
        Assert.Equal(67108864, v.VirtualSize);
        Assert.Equal(65536, v.Granularity);
        Assert.True(BitmapCheck.Validate(Info(B0), "b0", 1 << 20).Usable);
    }

    [Theory]
    [InlineData("""{ "flags": ["in-use", "auto"], "name": "b0", "granularity": 65536 }""", "b0", 65536, "in-use")]
    [InlineData("""{ "flags": [], "name": "b0", "granularity": 65536 }""", "b0", 65536, "disabled")]
    [InlineData(B0, "b1", 65536, "bitmap 'b1' is missing")]
    [InlineData("""{ "flags": ["auto"], "name": "b0", "granularity": 1048576 }""", "b0", 65536, "coarser than the repository block size 65536")]
    [InlineData("""{ "flags": ["auto"], "name": "b0", "granularity": 3000 }""", "b0", 65536, "not a power of two")]
    public void A_bitmap_that_may_have_missed_writes_is_refused_with_the_reason(string bitmap, string name, int blockSize, string reason)
    {
        var v = BitmapCheck.Validate(Info(bitmap), name, blockSize);
        Assert.False(v.Usable);
        Assert.Contains(reason, v.Reason);
    }

    [Fact]
    public void Images_that_cannot_carry_a_usable_bitmap_are_refused()
    {
        Assert.Contains("not qcow2", BitmapCheck.Validate(Info(B0, format: "raw"), "b0", 65536).Reason);
        Assert.Contains("external data file", BitmapCheck.Validate(Info(B0, extra: "\"data-file\": \"d.raw\","), "b0", 65536).Reason);
        Assert.Contains("corrupt", BitmapCheck.Validate(Info(B0).Replace("\"corrupt\": false", "\"corrupt\": true", StringComparison.Ordinal), "b0", 65536).Reason);
        Assert.Contains("no bitmaps", BitmapCheck.Validate("""{ "virtual-size": 1, "format": "qcow2", "format-specific": { "type": "qcow2", "data": { "compat": "0.10" } } }""", "b0", 65536).Reason);
        Assert.Contains("not JSON", BitmapCheck.Validate("qemu-img: Could not open", "b0", 65536).Reason);
    }
}
