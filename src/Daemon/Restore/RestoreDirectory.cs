using Backupd.Daemon.Cli;

namespace Backupd.Daemon.Restore;

/// <summary>
/// A directory restored files may be written into, checked before anything is written: an absolute
/// path with no symbolic link anywhere in it (a symlinked parent could send the files elsewhere), and
/// names that are single path components which do not exist yet. Files are then created with
/// CreateNew, so a file that appears in between is still not overwritten.
/// </summary>
public sealed class RestoreDirectory
{
    private RestoreDirectory(string path) => Path = path;

    public string Path { get; }

    /// <summary>Checks <paramref name="directory"/> (creating it and missing parents if <paramref name="create"/>) and that none of <paramref name="fileNames"/> exists there.</summary>
    public static RestoreDirectory Prepare(string directory, IEnumerable<string> fileNames, bool create)
    {
        if (string.IsNullOrWhiteSpace(directory))
            throw new RestoreException(FailureKind.Usage, "--to: a directory is required");
        var full = System.IO.Path.GetFullPath(directory);
        RefuseSymlinks(full);
        if (File.Exists(full))
            throw new RestoreException(FailureKind.Usage, $"--to {full}: is a file, expected a directory");
        var target = new RestoreDirectory(full);
        var names = fileNames.ToList();
        foreach (var name in names) target.PathOf(name);
        if (Directory.Exists(full))
        {
            var existing = names.Where(n => System.IO.Path.Exists(System.IO.Path.Combine(full, n))).ToList();
            if (existing.Count > 0)
                throw new RestoreException(FailureKind.Usage,
                    $"refusing to overwrite {string.Join(", ", existing.Select(n => System.IO.Path.Combine(full, n)))}: choose an empty directory or remove them");
        }
        else if (create)
        {
            Directory.CreateDirectory(full);
            RefuseSymlinks(full); // a link created meanwhile in a parent we just made
        }
        else
        {
            throw new RestoreException(FailureKind.NotFound, $"{full}: directory does not exist");
        }
        return target;
    }

    /// <summary>The full path of <paramref name="fileName"/> in this directory; refuses anything but a plain single name.</summary>
    public string PathOf(string fileName)
    {
        if (fileName.Length == 0 || fileName is "." or ".." || fileName.Contains('/', StringComparison.Ordinal) || fileName.Contains('\0', StringComparison.Ordinal))
            throw new RestoreException(FailureKind.Usage, $"'{fileName}' is not a plain file name; restored files stay inside {Path}");
        var full = System.IO.Path.GetFullPath(System.IO.Path.Combine(Path, fileName));
        if (System.IO.Path.GetDirectoryName(full) != Path)
            throw new RestoreException(FailureKind.Usage, $"'{fileName}' would be written outside {Path}");
        return full;
    }

    /// <summary>Refuses a path where any existing component, the last included, is a symbolic link.</summary>
    public static void RefuseSymlinks(string fullPath)
    {
        var current = "/";
        foreach (var part in fullPath.Split('/', StringSplitOptions.RemoveEmptyEntries))
        {
            current = System.IO.Path.Combine(current, part);
            var info = new FileInfo(current);
            if (!info.Exists && !Directory.Exists(current)) return; // the rest will be created by us
            if (info.LinkTarget is { } link)
                throw new RestoreException(FailureKind.Usage, $"{current} is a symbolic link (to {link}); give the real path, restores never write through links");
        }
    }
}
