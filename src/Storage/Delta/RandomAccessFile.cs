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
