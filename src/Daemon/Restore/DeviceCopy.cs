using Microsoft.Win32.SafeHandles;

namespace Backupd.Daemon.Restore;

/// <summary>
/// Writes an image file onto a block device of exactly its size: every byte, holes of the file as zeros
/// (the device holds old data there), 8 MiB at a time, then fsync. A device cannot be renamed, truncated
/// or replaced, so this is the only way an image gets onto one.
/// </summary>
public static class DeviceCopy
{
    private const int ChunkBytes = 8 << 20;

    public static Task CopyAsync(string image, string device, CancellationToken ct) => Task.Run(() =>
    {
        using var input = File.OpenHandle(image, FileMode.Open, FileAccess.Read, FileShare.Read);
        using var output = File.OpenHandle(device, FileMode.Open, FileAccess.Write, FileShare.ReadWrite);
        var length = RandomAccess.GetLength(input);
        var deviceLength = Storage.Repository.SourceLength.Of(output, device);
        if (deviceLength != length)
            throw new RestoreException(FailureKind.Usage, $"{device} has {deviceLength} bytes, the image to write onto it {length}; nothing was written");
        Copy(input, output, length, ct);
        RandomAccess.FlushToDisk(output);
    }, ct);

    private static void Copy(SafeFileHandle input, SafeFileHandle output, long length, CancellationToken ct)
    {
        var buffer = new byte[ChunkBytes];
        for (long offset = 0; offset < length; offset += ChunkBytes)
        {
            ct.ThrowIfCancellationRequested();
            var n = (int)Math.Min(ChunkBytes, length - offset);
            var span = buffer.AsSpan(0, n);
            var read = 0;
            while (read < n)
            {
                var r = RandomAccess.Read(input, span[read..], offset + read);
                if (r == 0) throw new IOException($"image shrank while being written to the device: end of file at {offset + read} of {length}");
                read += r;
            }
            RandomAccess.Write(output, span, offset);
        }
    }
}
