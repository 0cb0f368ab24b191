using Backupd.Storage.Repository;

namespace Backupd.Storage.Tests.Repository;

/// <summary>What the size probe says for what is not a block device (block devices: tests/Integration/BlockDeviceBackupTests).</summary>
public sealed class SourceLengthTests : IDisposable
{
    private readonly string dir = Directory.CreateTempSubdirectory("bkd-srclen-").FullName;

    public void Dispose() => Directory.Delete(dir, recursive: true);

    [Fact]
    public void A_regular_file_has_its_length_even_when_sparse()
    {
        var path = Path.Combine(dir, "sparse.img");
        using (var f = new FileStream(path, FileMode.CreateNew)) f.SetLength((5 << 20) + 123);

        Assert.Equal((5 << 20) + 123, SourceLength.Of(path));
        Assert.Equal(SourceKind.RegularFile, SourceLength.KindOf(path));
    }

    [Fact]
    public void A_symbolic_link_is_followed()
    {
        var path = Path.Combine(dir, "data");
        File.WriteAllBytes(path, new byte[4096]);
        var link = Path.Combine(dir, "link");
        File.CreateSymbolicLink(link, path);

        Assert.Equal(4096, SourceLength.Of(link));
        Assert.Equal(SourceKind.RegularFile, SourceLength.KindOf(link));
    }

    [Fact]
    public void A_character_device_is_neither_file_nor_block_device() =>
        Assert.Equal(SourceKind.Other, SourceLength.KindOf("/dev/null"));
}
