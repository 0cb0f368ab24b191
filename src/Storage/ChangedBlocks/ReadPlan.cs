namespace Backupd.Storage.ChangedBlocks;

/// <summary>
/// Which host blocks of a qcow2 file a backup must read, given the guest ranges a dirty bitmap marks written since
/// the previous backup (docs/repository-format.md, "Changed-block read plan"). A host block may be skipped only
/// when every byte of it holds guest data (depth 0) of clusters the bitmap marks clean: such bytes cannot have
/// changed without a guest write. Everything else is read: qcow2 metadata (header, L1/L2 and refcount tables,
/// bitmap tables), free clusters, blocks only partly covered by clean data, blocks of dirty clusters, host ranges
/// claimed by two guest ranges. Memory: one bit per block (2 MiB for 1 TiB at 64 KiB blocks).
/// </summary>
public sealed class ReadPlan
{
    private readonly ulong[] _clean;

    private ReadPlan(long fileLength, int blockSize, ulong[] clean, long cleanBlocks, long cleanBytes)
    {
        FileLength = fileLength;
        BlockSize = blockSize;
        _clean = clean;
        BlockCount = (fileLength + blockSize - 1) / blockSize;
        BlocksToRead = BlockCount - cleanBlocks;
        BytesToRead = fileLength - cleanBytes;
    }

    /// <summary>The length of the file the plan was made for; a file of another length is read fully.</summary>
    public long FileLength { get; }

    public int BlockSize { get; }

    public long BlockCount { get; }

    public long BlocksToRead { get; }

    public long BytesToRead { get; }

    /// <summary>True unless block <paramref name="blockIndex"/> holds only clean guest data. Blocks past the end must be read.</summary>
    public bool MustRead(long blockIndex) =>
        blockIndex < 0 || blockIndex >= BlockCount || (_clean[blockIndex >> 6] & (1UL << (int)(blockIndex & 63))) == 0;

    /// <summary>
    /// Builds the plan for a file of <paramref name="fileLength"/> bytes in blocks of <paramref name="blockSize"/>.
    /// <paramref name="mappings"/>: the file's depth-0 data extents (any order); <paramref name="dirty"/>: the bitmap's map.
    /// </summary>
    public static ReadPlan Build(long fileLength, int blockSize, IReadOnlyList<GuestMapping> mappings, DirtyClusters dirty)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(fileLength);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(blockSize);
        ArgumentNullException.ThrowIfNull(mappings);
        ArgumentNullException.ThrowIfNull(dirty);
        var blocks = (fileLength + blockSize - 1) / blockSize;
        var clean = new ulong[(blocks + 63) / 64];
        var shared = new ulong[clean.Length];
        var state = new BlockState(fileLength, blockSize, clean);
        long previousHostEnd = 0;
        foreach (var m in mappings.OrderBy(m => m.HostOffset))
        {
            if (m.Length <= 0 || m.HostOffset < 0 || m.GuestOffset < 0)
            {
                throw new ArgumentException($"mapping {m} has a negative offset or no length", nameof(mappings));
            }
            var hostEnd = Math.Min(fileLength, m.HostOffset + m.Length);
            if (m.HostOffset < previousHostEnd)
            {
                // Two guest ranges claim the same host bytes (shared clusters): a write to either may move data, so read them.
                for (var b = m.HostOffset / blockSize; b * blockSize < Math.Min(previousHostEnd, hostEnd); b++)
                {
                    shared[b >> 6] |= 1UL << (int)(b & 63);
                }
            }
            previousHostEnd = Math.Max(previousHostEnd, hostEnd);
            for (var host = m.HostOffset; host < hostEnd;)
            {
                var block = host / blockSize;
                var pieceEnd = Math.Min(hostEnd, (block + 1) * blockSize);
                var guest = m.GuestOffset + (host - m.HostOffset);
                state.Cover(block, pieceEnd - host, dirty.AnyDirty(guest, pieceEnd - host));
                host = pieceEnd;
            }
        }
        state.Finish();
        for (var i = 0; i < clean.Length; i++)
        {
            clean[i] &= ~shared[i];
        }
        long cleanBlocks = 0, cleanBytes = 0;
        for (long b = 0; b < blocks; b++)
        {
            if ((clean[b >> 6] & (1UL << (int)(b & 63))) != 0)
            {
                cleanBlocks++;
                cleanBytes += Math.Min(blockSize, fileLength - (b * blockSize));
            }
        }
        return new ReadPlan(fileLength, blockSize, clean, cleanBlocks, cleanBytes);
    }

    /// <summary>Accumulates clean coverage of the current block while the mappings are walked in host order (shared host ranges are cleared afterwards).</summary>
    private sealed class BlockState(long fileLength, int blockSize, ulong[] clean)
    {
        private long _block = -1;
        private long _cleanBytes;
        private bool _forced;

        public void Cover(long block, long bytes, bool dirty)
        {
            if (block != _block)
            {
                Finish();
                _block = block;
                _cleanBytes = 0;
                _forced = false;
            }
            if (dirty)
            {
                _forced = true;
            }
            else
            {
                _cleanBytes += bytes;
            }
        }

        public void Finish()
        {
            if (_block < 0)
            {
                return;
            }
            var length = Math.Min(blockSize, fileLength - (_block * blockSize));
            if (!_forced && _cleanBytes == length)
            {
                clean[_block >> 6] |= 1UL << (int)(_block & 63);
            }
            _block = -1;
        }
    }
}
