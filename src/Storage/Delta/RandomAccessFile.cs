namespace Backupd.Storage.Delta;

/// <summary>
/// Positional access to the file an in-place update changes. The delta engine only sees this
/// interface (no paths); the repository supplies one over a file handle that punches holes for
/// zero ranges and fsyncs on <see cref="Flush"/>.
/// </summary>
public interface IRandomAccessFile
{
    long Length { get; }

    /// <summary>Reads up to buffer.Length bytes at offset; fewer only at end of file.</summary>
    int Read(long offset, Span<byte> buffer);

    void Write(long offset, ReadOnlySpan<byte> data);

    /// <summary>Makes [offset, offset+length) read as zeros (a hole where the file system allows).</summary>
    void Zero(long offset, long length);

    void SetLength(long length);

    /// <summary>Makes every write so far durable.</summary>
    void Flush();
}

/// <summary><see cref="IRandomAccessFile"/> over a seekable stream (tests, memory streams).</summary>
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
