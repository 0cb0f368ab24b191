using Backupd.Storage.Delta;
using Microsoft.Win32.SafeHandles;

namespace Backupd.Storage.Repository;

/// <summary>
/// Reads an older version of a file without changing anything: the mirror, overlaid by the undo records
/// from the newest to the version's own (so older bytes win). Sequential, streamed: each undo record is
/// read once, in step with the output, and checked completely (entries and trailer) by <see cref="Finish"/>.
/// Holes of the mirror are recognised with SEEK_DATA and not read.
/// </summary>
internal sealed class VersionReader : IDisposable
{
    private readonly SafeFileHandle _mirror;
    private readonly long _mirrorLength;
    private readonly List<Cursor> _cursors = [];
    private long _dataStart = -1;
    private long _dataEnd = -1;

    /// <param name="beneath">The repository's files (no links followed).</param>
    /// <param name="mirrorPath">The newest version.</param>
    /// <param name="undoPathsNewestFirst">Undo records to apply: the newest one first, the wanted version's own last.</param>
    public VersionReader(RepositoryDirectory beneath, string mirrorPath, IReadOnlyList<string> undoPathsNewestFirst)
    {
        _mirror = beneath.OpenFile(mirrorPath, FileMode.Open, FileAccess.Read);
        _mirrorLength = RandomAccess.GetLength(_mirror);
        try
        {
            foreach (var path in undoPathsNewestFirst)
            {
                _cursors.Add(new Cursor(beneath, path));
            }
        }
        catch
        {
            Dispose();
            throw;
        }
        Length = _cursors.Count == 0 ? _mirrorLength : _cursors[^1].Reader.TargetLength;
    }

    public long Length { get; }

    /// <summary>The newest version's file (read-only), for copies of ranges that no undo record changes.</summary>
    public SafeFileHandle Mirror => _mirror;

    /// <summary>
    /// Fills dest with [offset, offset+dest.Length); calls must move forward. With <paramref name="holes"/>,
    /// blocks of <paramref name="blockSize"/> that lie in a hole of the mirror and that no undo entry with data
    /// touches are only flagged there (their bytes in dest are left as they were): a sparse 64 GiB image costs
    /// neither reads nor clearing. With <paramref name="overlaid"/> (and a block size), blocks an undo entry touches
    /// are flagged there: their bytes are not the mirror's.
    /// </summary>
    public void Read(long offset, Span<byte> dest, bool[]? holes = null, int blockSize = 0, bool[]? overlaid = null)
    {
        var blocks = new BlockFlags(holes, blockSize, offset, dest, overlaid);
        ReadMirror(offset, dest, blocks);
        var end = offset + dest.Length;
        foreach (var c in _cursors)
        {
            c.Overlay(offset, end, dest, blocks);
        }
    }

    /// <summary>Which blocks of the current read are still "hole, not materialised".</summary>
    private readonly ref struct BlockFlags
    {
        private readonly bool[]? _holes;
        private readonly bool[]? _overlaid;
        private readonly int _blockSize;
        private readonly long _offset;
        private readonly Span<byte> _dest;

        public BlockFlags(bool[]? holes, int blockSize, long offset, Span<byte> dest, bool[]? overlaid)
        {
            _holes = holes;
            _overlaid = overlaid;
            _blockSize = blockSize;
            _offset = offset;
            _dest = dest;
            if (overlaid is not null)
            {
                Array.Clear(overlaid, 0, (dest.Length + blockSize - 1) / blockSize);
            }
            if (holes is null)
            {
                dest.Clear();
            }
            else
            {
                Array.Fill(holes, true, 0, (dest.Length + blockSize - 1) / blockSize);
            }
        }

        /// <summary>An undo entry sets [from, to): flag the blocks it touches.</summary>
        public void Overlaid(long from, long to)
        {
            if (_overlaid is null || from >= to)
            {
                return;
            }
            var first = (int)((from - _offset) / _blockSize);
            var last = (int)((to - 1 - _offset) / _blockSize);
            Array.Fill(_overlaid, true, first, last - first + 1);
        }

        /// <summary>
        /// Bytes are about to be written into [from, to): materialise the hole blocks it touches, zeroing only their
        /// bytes outside that range (clearing what the write overwrites cost a memset of every restored byte).
        /// </summary>
        public void Materialise(long from, long to)
        {
            if (_holes is null || from >= to)
            {
                return;
            }
            var first = (int)((from - _offset) / _blockSize);
            var last = (int)((to - 1 - _offset) / _blockSize);
            var inFrom = (int)(from - _offset);
            var inTo = (int)(to - _offset);
            for (var i = first; i <= last; i++)
            {
                if (_holes[i])
                {
                    var start = i * _blockSize;
                    var end = Math.Min(start + _blockSize, _dest.Length);
                    _dest[start..Math.Max(start, Math.Min(inFrom, end))].Clear();
                    _dest[Math.Min(end, Math.Max(inTo, start))..end].Clear();
                    _holes[i] = false;
                }
            }
        }
    }

    /// <summary>Reads every undo record to its end so damage anywhere in them is reported.</summary>
    public void Finish()
    {
        foreach (var c in _cursors)
        {
            c.Drain();
        }
    }

    private void ReadMirror(long offset, Span<byte> dest, BlockFlags blocks)
    {
        var end = Math.Min(offset + dest.Length, _mirrorLength);
        var pos = offset;
        while (pos < end)
        {
            if (pos >= _dataEnd)
            {
                _dataStart = Native.NextData(_mirror, pos);
                _dataEnd = _dataStart < 0 ? long.MaxValue : Native.NextHole(_mirror, _dataStart);
                if (_dataStart < 0)
                {
                    _dataStart = long.MaxValue;
                }
            }
            if (_dataStart >= end)
            {
                return; // the rest is a hole
            }
            var from = Math.Max(pos, _dataStart);
            var to = Math.Min(end, _dataEnd);
            blocks.Materialise(from, to);
            var span = dest.Slice((int)(from - offset), (int)(to - from));
            var n = 0;
            while (n < span.Length)
            {
                var r = RandomAccess.Read(_mirror, span[n..], from + n);
                if (r == 0)
                {
                    span[n..].Clear(); // Materialise left these bytes to the read
                    break;
                }
                n += r;
            }
            pos = to;
        }
    }

    public void Dispose()
    {
        foreach (var c in _cursors)
        {
            c.Dispose();
        }
        _mirror.Dispose();
    }

    private sealed class Cursor : IDisposable
    {
        private readonly FileStream _stream;
        private UndoEntry _current;
        private bool _has;

        public Cursor(RepositoryDirectory beneath, string path)
        {
            _stream = beneath.OpenRead(path, 1 << 16);
            try
            {
                Reader = new UndoRecordReader(_stream);
            }
            catch (CorruptDataException e)
            {
                _stream.Dispose();
                throw new CorruptDataException($"{path}: {e.Message}", e);
            }
            Path = path;
            _has = Next();
        }

        public UndoRecordReader Reader { get; }
        public string Path { get; }

        public void Overlay(long offset, long end, Span<byte> dest, BlockFlags blocks)
        {
            while (_has && _current.Offset < end)
            {
                if (_current.End > offset)
                {
                    var from = Math.Max(offset, _current.Offset);
                    var to = Math.Min(end, _current.End);
                    var target = dest.Slice((int)(from - offset), (int)(to - from));
                    blocks.Overlaid(from, to);
                    if (_current.Kind == UndoEntryKind.Zero)
                    {
                        target.Clear(); // in a hole block: stale bytes, the flag still says zero
                    }
                    else
                    {
                        blocks.Materialise(from, to);
                        _current.Data.Span.Slice((int)(from - _current.Offset), (int)(to - from)).CopyTo(target);
                    }
                }
                if (_current.End > end)
                {
                    return; // continues into the next read
                }
                _has = Next();
            }
        }

        public void Drain()
        {
            while (_has)
            {
                _has = Next();
            }
        }

        private bool Next()
        {
            try
            {
                return Reader.TryRead(out _current);
            }
            catch (CorruptDataException e)
            {
                throw new CorruptDataException($"{Path}: {e.Message}", e);
            }
        }

        public void Dispose() => _stream.Dispose();
    }
}
