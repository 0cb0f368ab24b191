using Backupd.Storage.Delta;

namespace Backupd.Storage.Tests.Delta;

/// <summary>The per-block hash and compare step of a backup: what counts as changed and what reaches the mirror.</summary>
public class BlockDiffTests
{
    private const int BlockSize = 4096;
    private static readonly BlockHasher Hasher = new(TestFiles.Key);

    /// <summary>Records every call, so a test sees the runs exactly as the mirror would get them.</summary>
    private sealed class RecordingSink : IBlockSink
    {
        public List<(long Offset, int Length)> Writes { get; } = [];
        public List<(long Offset, long Length)> Zeros { get; } = [];

        public void Write(long offset, ReadOnlySpan<byte> data) => Writes.Add((offset, data.Length));

        public void WriteZeros(long offset, long length) => Zeros.Add((offset, length));
    }

    private static byte[] RandomBlocks(int seed, int blocks, int tail = 0)
    {
        var data = new byte[(blocks * BlockSize) + tail];
        new Random(seed).NextBytes(data);
        return data;
    }

    private static (BlockDiff Diff, List<bool> Unchanged) Run(byte[] data, Signature? previous, IBlockSink sink, int chunkBlocks = 3)
    {
        var diff = new BlockDiff(BlockSize, data.Length, Hasher, previous, sink);
        var unchanged = new List<bool>();
        foreach (var chunk in InPlaceUpdate.Chunks(data, BlockSize, Hasher, chunkBlocks))
        {
            var flags = new bool[chunk.Blocks];
            diff.Apply(chunk, flags);
            unchanged.AddRange(flags);
        }
        return (diff, unchanged);
    }

    [Fact]
    public void New_mirror_gets_runs_of_data_blocks_and_keeps_zero_blocks_as_holes()
    {
        var data = RandomBlocks(1, 8, tail: 100);
        data.AsSpan(2 * BlockSize, 2 * BlockSize).Clear(); // blocks 2 and 3 zero
        var sink = new RecordingSink();
        var (diff, unchanged) = Run(data, previous: null, sink, chunkBlocks: 16);
        Assert.Equal([(0L, 2 * BlockSize), (4L * BlockSize, (4 * BlockSize) + 100)], sink.Writes);
        Assert.Empty(sink.Zeros);
        Assert.Equal(7, diff.BlocksChanged); // 9 blocks, 2 of them zero
        Assert.Equal(data.Length - (2L * BlockSize), diff.BytesWritten);
        Assert.All(unchanged, Assert.False);
    }

    [Fact]
    public void Against_the_previous_version_only_changed_blocks_are_written_and_a_zeroed_block_is_punched()
    {
        var old = RandomBlocks(2, 6);
        var @new = (byte[])old.Clone();
        new Random(3).NextBytes(@new.AsSpan(1 * BlockSize, BlockSize)); // rewritten
        @new.AsSpan(4 * BlockSize, BlockSize).Clear();                   // now zero
        var sink = new RecordingSink();
        var (diff, unchanged) = Run(@new, Signature.Compute(new MemoryStream(old), Hasher, BlockSize), sink);
        Assert.Equal([(1L * BlockSize, BlockSize)], sink.Writes);
        Assert.Equal([(4L * BlockSize, (long)BlockSize)], sink.Zeros);
        Assert.Equal(2, diff.BlocksChanged);
        Assert.Equal(BlockSize, diff.BytesWritten);
        Assert.Equal([true, false, true, true, false, true], unchanged);
    }

    [Fact]
    public void Identical_content_changes_nothing()
    {
        var data = RandomBlocks(4, 5, tail: 7);
        var sink = new RecordingSink();
        var (diff, unchanged) = Run(data, Signature.Compute(new MemoryStream(data), Hasher, BlockSize), sink);
        Assert.Empty(sink.Writes);
        Assert.Empty(sink.Zeros);
        Assert.Equal(0, diff.BlocksChanged);
        Assert.All(unchanged, Assert.True);
    }

    [Fact]
    public void A_grown_last_block_and_the_appended_blocks_count_as_changed()
    {
        var old = RandomBlocks(5, 3, tail: 10);
        byte[] @new = [.. old, .. RandomBlocks(6, 2)];
        var sink = new RecordingSink();
        var (diff, unchanged) = Run(@new, Signature.Compute(new MemoryStream(old), Hasher, BlockSize), sink);
        Assert.Equal([true, true, true, false, false, false], unchanged);
        Assert.Equal(3, diff.BlocksChanged);
        Assert.Equal([(3L * BlockSize, @new.Length - (3 * BlockSize))], sink.Writes);
    }

    [Theory]
    [InlineData(1)]
    [InlineData(4)]
    [InlineData(64)]
    public void The_new_signature_equals_one_computed_over_the_whole_file_whatever_the_window(int chunkBlocks)
    {
        var data = TestFiles.ImageLike(new Random(8), (13 * BlockSize) + 555, BlockSize);
        var (diff, _) = Run(data, previous: null, new RecordingSink(), chunkBlocks);
        Assert.Equal(Signature.Compute(new MemoryStream(data), Hasher, BlockSize).Digest(), diff.Build().Digest());
    }

    [Fact]
    public void Hole_blocks_hash_as_zero_without_being_read()
    {
        var data = RandomBlocks(9, 3);
        var zero = new bool[3];
        var tags = new UInt128[3];
        BlockDiff.HashBlocks(data, data.Length, BlockSize, Hasher, zero, tags, hole: [false, true, false]);
        Assert.Equal([false, true, false], zero);
        Assert.Equal(default, tags[1]);
        Assert.Equal(Hasher.Hash(data.AsSpan(2 * BlockSize, BlockSize)), tags[2]);
    }
}
