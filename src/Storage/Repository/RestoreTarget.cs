using Microsoft.Win32.SafeHandles;

namespace Backupd.Storage.Repository;

/// <summary>How a restore wrote its file (docs/repository-format.md, "Restore").</summary>
/// <param name="ClonedBytes">Bytes whose extents the target shares with the mirror (FICLONERANGE, a reflink on XFS and btrfs): neither read nor written.</param>
/// <param name="WrittenBytes">Bytes written from the restore's hashed buffer (blocks taken from undo records, and all data where the file system cannot clone).</param>
/// <param name="CloneRefused">True when the file system refused to clone for this pair of files (ext4, tmpfs, another file system) and the buffer was written instead.</param>
public sealed record RestoreReport(long ClonedBytes, long WrittenBytes, bool CloneRefused);

/// <summary>
/// The file a restore writes, one hashed window at a time. Zero blocks are skipped (they stay holes). Runs of blocks
/// whose bytes are the mirror's own are cloned from the mirror where the file system shares extents (XFS, btrfs);
/// everything else, and everything where it cannot clone, is written from the buffer that was just read and hashed.
/// Not copy_file_range: on ext4 it is a page-cache copy through a pipe that cost 3.6× the CPU of writing the hashed
/// buffer (bench/restore.sh, perf), and the buffer is exactly the bytes hashed. A clone shares the mirror's extents
/// as they are at the clone, which were hashed a moment before from the page cache of the same file: the group's
/// shared lock, held for the whole restore, keeps every writer of the mirror (backup, heal, delete) out, so those
/// are the same bytes. Write-back is started after every window and awaited a few windows behind: the disk writes
/// while the next windows are read (cp + fsync writes only at the end), and the dirty pages a restore leaves stay
/// bounded; the final fsync then waits for the tail only.
/// </summary>
internal sealed class RestoreTarget(SafeFileHandle output, SafeFileHandle? mirror, bool clone)
{
    private const int WriteBackLag = 8; // windows between starting write-back and waiting for it
    private readonly Queue<(long Offset, long Length)> _inFlight = new();
    private const int MisalignedBeforeGivingUp = 8; // refusals of single ranges with no clone yet: the file system never clones
    private bool _clone = clone && mirror is not null;
    private int _misaligned;
    private long _cloned;
    private long _written;
    private bool _refused;

    public RestoreReport Report => new(_cloned, _written, _refused);

    /// <summary>Writes one window: <paramref name="zero"/> and <paramref name="overlaid"/> per block (overlaid: bytes from an undo record, not the mirror).</summary>
    public void Write(long offset, ReadOnlySpan<byte> data, ReadOnlySpan<bool> zero, ReadOnlySpan<bool> overlaid, int blockSize)
    {
        var blocks = zero.Length;
        var runStart = -1;
        var runFromMirror = false;
        for (var i = 0; i <= blocks; i++)
        {
            var isData = i < blocks && !zero[i];
            var fromMirror = isData && !overlaid[i];
            if (runStart >= 0 && (!isData || fromMirror != runFromMirror))
            {
                var from = runStart * blockSize;
                var to = Math.Min(i * blockSize, data.Length);
                WriteRun(offset + from, data[from..to], runFromMirror);
                runStart = -1;
            }
            if (isData && runStart < 0)
            {
                runStart = i;
                runFromMirror = fromMirror;
            }
        }
        if (data.Length > 0)
        {
            Native.StartWriteBack(output, offset, data.Length, wait: false);
            _inFlight.Enqueue((offset, data.Length));
            if (_inFlight.Count > WriteBackLag)
            {
                var (o, n) = _inFlight.Dequeue();
                Native.StartWriteBack(output, o, n, wait: true);
            }
        }
    }

    private void WriteRun(long offset, ReadOnlySpan<byte> bytes, bool fromMirror)
    {
        if (fromMirror && _clone)
        {
            switch (Native.CloneRange(mirror!, output, offset, bytes.Length))
            {
                case CloneResult.Cloned:
                    _cloned += bytes.Length;
                    return;
                case CloneResult.Unsupported:
                    _clone = false;
                    _refused = true;
                    break;
                case CloneResult.Misaligned when _cloned == 0 && ++_misaligned >= MisalignedBeforeGivingUp:
                    _clone = false;
                    _refused = true;
                    break;
            }
        }
        RandomAccess.Write(output, bytes, offset);
        _written += bytes.Length;
    }
}
