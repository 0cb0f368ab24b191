using Backupd.Storage.Delta;

namespace Backupd.Storage.Tests.Delta;

/// <summary><see cref="IRandomAccessFile"/> over a seekable stream (the tests' in-memory files).</summary>
public sealed class StreamRandomAccessFile(Stream stream) : IRandomAccessFile
{
    private static readonly byte[] Zeros = new byte[64 * 1024];

    public long Length => stream.Length;

    public int Read(long offset, Span<byte> buffer)
    {
        if (offset >= stream.Length)
        {
            return 0;
        }
        stream.Position = offset;
        var total = 0;
        while (total < buffer.Length)
        {
            var n = stream.Read(buffer[total..]);
            if (n == 0)
            {
                break;
            }
            total += n;
        }
        return total;
    }

    public void Write(long offset, ReadOnlySpan<byte> data)
    {
        stream.Position = offset;
        stream.Write(data);
    }

    public void Zero(long offset, long length)
    {
        stream.Position = offset;
        while (length > 0)
        {
            var n = (int)Math.Min(length, Zeros.Length);
            stream.Write(Zeros, 0, n);
            length -= n;
        }
    }

    public void SetLength(long length) => stream.SetLength(length);

    public void Flush() => stream.Flush();
}
