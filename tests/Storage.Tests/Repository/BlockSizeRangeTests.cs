using Backupd.Storage.Delta;
using Backupd.Storage.Tests.Delta;
using Backupd.Storage.Repository;

namespace Backupd.Storage.Tests.Repository;

/// <summary>The repository accepts exactly BlockHasher's range; a file keeps the block size of its first backup.</summary>
public class BlockSizeRangeTests
{
    [Theory]
    [InlineData(2048, false)]
    [InlineData(4096, true)]
    [InlineData(100 * 1024, false)]
    [InlineData(1 << 20, true)]
    [InlineData(4 << 20, true)]
    [InlineData(8 << 20, false)]
    [InlineData(64 << 20, false)]
    public async Task A_first_backup_takes_the_repository_block_size_only_inside_the_range(int blockSize, bool accepted)
    {
        Assert.Equal(accepted, BlockHasher.IsValidBlockSize(blockSize));
        using var t = new TempRepository();
        t.Repo.BlockSize = blockSize;
        var content = TempRepository.Content(7, 40, 10);
        if (accepted)
        {
            var point = await t.BackupAsync("g", ("vda.0", content));
            Assert.Equal(blockSize, point.Files.Single().BlockSize);
            Assert.Equal(content, await t.RestoreAsync(point.PointId, "vda.0"));
        }
        else
        {
            var e = await Assert.ThrowsAsync<ArgumentOutOfRangeException>(() => t.BackupAsync("g", ("vda.0", content)));
            Assert.Contains(BlockHasher.BlockSizeRange, e.Message, StringComparison.Ordinal);
        }
    }

    [Fact]
    public async Task An_existing_file_keeps_its_block_size_when_the_repository_default_changes()
    {
        using var t = new TempRepository();
        var v0 = TempRepository.Content(8, 40);
        await t.BackupAsync("g", ("vda.0", v0));
        t.Repo.BlockSize = 1 << 20;
        var v1 = TempRepository.Edit(9, v0, TestFiles.Edit.InPlace);
        var second = await t.BackupAsync("g", ("vda.0", v1), ("vdb.0", v0));
        Assert.Equal(TempRepository.BlockSize, second.Files.Single(f => f.FileKey == "vda.0").BlockSize);
        Assert.Equal(1 << 20, second.Files.Single(f => f.FileKey == "vdb.0").BlockSize);
    }
}
