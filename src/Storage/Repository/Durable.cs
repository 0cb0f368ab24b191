namespace Backupd.Storage.Repository;

/// <summary>Publication primitives: write-temp + fsync + rename + directory fsync.</summary>
internal static class Durable
{
    public static void WriteFile(string path, ReadOnlySpan<byte> content)
    {
        var dir = Path.GetDirectoryName(path)!;
        var temp = Path.Combine(dir, $".{Path.GetFileName(path)}.{Guid.NewGuid():N}.tmp");
        using (var fs = new FileStream(temp, FileMode.CreateNew, FileAccess.Write, FileShare.None))
        {
            fs.Write(content);
            fs.Flush(flushToDisk: true);
        }
        File.Move(temp, path, overwrite: true);
        Native.FsyncDirectory(dir);
    }

    public static void Rename(string from, string to)
    {
        File.Move(from, to, overwrite: true);
        Native.FsyncDirectory(Path.GetDirectoryName(to)!);
    }

    public static void Delete(string path)
    {
        if (File.Exists(path))
        {
            File.Delete(path);
            Native.FsyncDirectory(Path.GetDirectoryName(path)!);
        }
    }

    public static void CreateDirectory(string path)
    {
        if (System.IO.Directory.Exists(path))
        {
            return;
        }
        var parent = Path.GetDirectoryName(path)!;
        CreateDirectory(parent);
        System.IO.Directory.CreateDirectory(path);
        Native.FsyncDirectory(parent);
    }
}
