using Microsoft.Win32.SafeHandles;

namespace Backupd.Storage.Repository;

/// <summary>How a restore wrote its file (docs/repository-format.md, "Restore").</summary>
/// <param name="KernelCopiedBytes">Bytes copied from the mirror inside the kernel (copy_file_range: shared extents where the file system reflinks).</param>
/// <param name="WrittenBytes">Bytes written from the restore's buffer (blocks taken from undo records, or all data when the kernel copy is not available).</param>
/// <param name="KernelCopyRefused">True when copy_file_range was refused for this pair of files (another file system, no support) and the buffer was written instead.</param>
public sealed record RestoreReport(long KernelCopiedBytes, long WrittenBytes, bool KernelCopyRefused);

/// <summary>
/// The file a restore writes, one hashed window at a time. Zero blocks are skipped (they stay holes). Runs of blocks
/// whose bytes are the mirror's own are copied from the mirror with copy_file_range, so a file system that can share
/// extents (XFS, btrfs) shares them and others copy in the kernel; blocks an undo record changed, and everything when
/// the kernel refuses, are written from the buffer that was hashed. Either way the bytes were hashed from the same
/// source, under the group's shared lock that keeps the mirror unchanged. Write-back is started after every window
/// and awaited a few windows behind: the disk writes while the next windows are read (cp + fsync writes only at the
/// end), and the dirty pages a restore leaves stay bounded; the final fsync then waits for the tail only.
/// </summary>
internal sealed class RestoreTarget(SafeFileHandle output, SafeFileHandle? mirror, bool kernelCopy)
{
    private const int WriteBackLag = 8; // windows between starting write-back and waiting for it
    private readonly Queue<(long Offset, long Length)> _inFlight = new();
    private bool _kernelCopy = kernelCopy && mirror is not null;
    private long _kernelCopied;
    private long _written;
    private bool _refused;

    public RestoreReport Report => new(_kernelCopied, _written, _refused);

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
        if (fromMirror && _kernelCopy)
        {
            var copied = Native.CopyRange(mirror!, output, offset, bytes.Length);
            if (copied >= 0)
            {
                _kernelCopied += copied;
                if (copied == bytes.Length)
                {
                    return;
                }
                bytes = bytes[(int)copied..]; // past the mirror's end: the buffer has the rest
                offset += copied;
            }
            else
            {
                _kernelCopy = false;
                _refused = true;
            }
        }
        RandomAccess.Write(output, bytes, offset);
        _written += bytes.Length;
    }
}
