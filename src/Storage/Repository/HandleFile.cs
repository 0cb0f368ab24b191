using Backupd.Storage.Delta;
using Microsoft.Win32.SafeHandles;

namespace Backupd.Storage.Repository;

/// <summary>An <see cref="IRandomAccessFile"/> over a file handle: positional I/O, holes for zero ranges, fsync.</summary>
internal sealed class HandleFile(SafeFileHandle handle) : IRandomAccessFile
{
    private static readonly byte[] Zeros = new byte[1 << 20];

    public SafeFileHandle Handle => handle;
    public long Length => RandomAccess.GetLength(handle);

    public int Read(long offset, Span<byte> buffer)
    {
        var total = 0;
        while (total < buffer.Length)
        {
            var n = RandomAccess.Read(handle, buffer[total..], offset + total);
            if (n == 0)
            {
                break;
            }
            total += n;
        }
        return total;
    }

    public void Write(long offset, ReadOnlySpan<byte> data) => RandomAccess.Write(handle, data, offset);

    public void Zero(long offset, long length)
    {
        var len = Length;
        if (offset >= len)
        {
            return; // beyond the end: a later SetLength leaves zeros there
        }
        var end = Math.Min(offset + length, len);
        if (Native.PunchHole(handle, offset, end - offset))
        {
            return;
        }
        for (var o = offset; o < end; o += Zeros.Length)
        {
            RandomAccess.Write(handle, Zeros.AsSpan(0, (int)Math.Min(Zeros.Length, end - o)), o);
        }
    }

    public void SetLength(long length) => RandomAccess.SetLength(handle, length);

    public void Flush() => RandomAccess.FlushToDisk(handle);
}
