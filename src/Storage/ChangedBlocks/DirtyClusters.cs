namespace Backupd.Storage.ChangedBlocks;

/// <summary>
/// The guest byte ranges a dirty bitmap marks as written, built from NBD block status of the
/// <c>qemu:dirty-bitmap:NAME</c> context. Covers [0, <see cref="CoveredLength"/>); anything beyond counts as dirty,
/// so a map that stopped short can never make a block look clean.
/// </summary>
public sealed class DirtyClusters
{
    private readonly long[] _starts;
    private readonly long[] _ends;

    private DirtyClusters(long[] starts, long[] ends, long covered)
    {
        _starts = starts;
        _ends = ends;
        CoveredLength = covered;
    }

    /// <summary>Guest bytes the map described (the disk's virtual size when complete).</summary>
    public long CoveredLength { get; }

    /// <summary>Sum of the dirty ranges.</summary>
    public long DirtyBytes
    {
        get
        {
            long sum = 0;
            for (var i = 0; i < _starts.Length; i++)
            {
                sum += _ends[i] - _starts[i];
            }
            return sum;
        }
    }

    public int RangeCount => _starts.Length;

    /// <summary>The dirty ranges (start, length), ascending and disjoint.</summary>
    public IEnumerable<(long Offset, long Length)> Ranges
    {
        get
        {
            for (var i = 0; i < _starts.Length; i++)
            {
                yield return (_starts[i], _ends[i] - _starts[i]);
            }
        }
    }

    /// <summary>True when any byte of [offset, offset+length) is dirty or outside the covered range.</summary>
    public bool AnyDirty(long offset, long length)
    {
        if (length <= 0)
        {
            return false;
        }
        var end = offset + length;
        if (offset < 0 || end > CoveredLength)
        {
            return true;
        }
        // The last range starting before end: the only candidate that can overlap, as ranges are disjoint and sorted.
        var i = Array.BinarySearch(_starts, end - 1);
        if (i < 0)
        {
            i = ~i - 1;
        }
        return i >= 0 && _ends[i] > offset;
    }

    /// <summary>Collects block-status extents in order from guest offset 0.</summary>
    public sealed class Builder
    {
        private readonly List<long> _starts = [];
        private readonly List<long> _ends = [];
        private long _next;

        /// <summary>Guest offset the next extent must start at.</summary>
        public long Next => _next;

        /// <summary>Adds the extent [offset, offset+length); extents must be contiguous from 0 (as NBD block status returns them).</summary>
        public Builder Add(long offset, long length, bool dirty)
        {
            if (offset != _next)
            {
                throw new ArgumentException($"extent at {offset} does not continue the map at {_next}", nameof(offset));
            }
            if (length <= 0)
            {
                throw new ArgumentOutOfRangeException(nameof(length), length, "an extent has a positive length");
            }
            _next = offset + length;
            if (!dirty)
            {
                return this;
            }
            if (_ends.Count > 0 && _ends[^1] == offset)
            {
                _ends[^1] = _next; // adjoining dirty extents are one range
            }
            else
            {
                _starts.Add(offset);
                _ends.Add(_next);
            }
            return this;
        }

        /// <summary>The map; throws unless the extents covered exactly [0, <paramref name="virtualSize"/>).</summary>
        public DirtyClusters Build(long virtualSize)
        {
            if (_next != virtualSize)
            {
                throw new InvalidOperationException($"the dirty map covers {_next} bytes but the disk has {virtualSize}");
            }
            return new DirtyClusters([.. _starts], [.. _ends], _next);
        }
    }
}
