using Backupd.Storage.ChangedBlocks;

namespace Backupd.Storage.Tests.ChangedBlocks;

public class ImageMapTests
{
    [Fact]
    public void Only_depth_zero_uncompressed_data_extents_with_an_offset_are_mappings()
    {
        // Shape of qemu-img 7.2 `map -U --output=json` of a linked clone.
        const string json = """
            [{ "start": 0, "length": 1048576, "depth": 0, "present": false, "zero": true, "data": false},
            { "start": 1048576, "length": 131072, "depth": 0, "present": true, "zero": false, "data": true, "offset": 589824},
            { "start": 1179648, "length": 65536, "depth": 1, "present": true, "zero": false, "data": true, "offset": 327680},
            { "start": 1245184, "length": 65536, "depth": 0, "present": true, "zero": false, "data": true, "compressed": true},
            { "start": 1310720, "length": 65536, "depth": 0, "present": true, "zero": true, "data": false, "offset": 720896},
            { "start": 1376256, "length": 65536, "depth": 0, "present": true, "zero": false, "data": true, "offset": 786432}]
            """;
        Assert.Equal(new[] { new GuestMapping(1048576, 131072, 589824), new GuestMapping(1376256, 65536, 786432) }, ImageMap.Parse(json));
    }

    [Theory]
    [InlineData("{}", "expected a JSON array")]
    [InlineData("[{\"start\": 0, \"depth\": 0}]", "extent 0 has no integer 'length'")]
    [InlineData("[{\"start\": -5, \"length\": 1, \"depth\": 0}]", "negative")]
    [InlineData("not json", "not JSON")]
    public void Malformed_output_is_refused_with_the_entry(string json, string message)
    {
        var e = Assert.Throws<FormatException>(() => ImageMap.Parse(json));
        Assert.Contains(message, e.Message);
    }
}
