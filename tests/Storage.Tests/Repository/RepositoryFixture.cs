using Backupd.Storage.Repository;
using Backupd.Storage.Tests.Delta;

namespace Backupd.Storage.Tests.Repository;

/// <summary>A temporary directory with a repository and source files; removed on dispose.</summary>
internal sealed class TempRepository : IDisposable
{
    public const int BlockSize = 4096;

    public TempRepository()
    {
        Root = Path.Combine(Path.GetTempPath(), $"bkd-test-{Guid.NewGuid().ToString("N")[..8]}");
        Directory.CreateDirectory(Root);
        RepoDir = Path.Combine(Root, "repo");
        Repo = OpenRepository();
    }

    public string Root { get; }
    public string RepoDir { get; }
    public BackupRepository Repo { get; private set; }

    public BackupRepository OpenRepository()
    {
        var r = BackupRepository.Open(RepoDir);
        r.BlockSize = BlockSize;
        r.BatchBytes = 3 * BlockSize; // several undo syncs per file, so crashes can land between batches
        return r;
    }

    /// <summary>Reopens (as a new process would after a crash).</summary>
    public BackupRepository Reopen()
    {
        Repo = OpenRepository();
        return Repo;
    }

    public string Path_(string name) => Path.Combine(Root, name);

    /// <summary>Writes content sparsely: all-zero blocks are skipped and stay holes.</summary>
    public string WriteSource(string name, byte[] content)
    {
        var path = Path_(name);
        File.Delete(path);
        using var fs = new FileStream(path, FileMode.CreateNew, FileAccess.Write);
        for (var o = 0; o < content.Length; o += BlockSize)
        {
            var block = content.AsSpan(o, Math.Min(BlockSize, content.Length - o));
            if (block.ContainsAnyExcept((byte)0))
            {
                fs.Position = o;
                fs.Write(block);
            }
        }
        fs.SetLength(content.Length);
        return path;
    }

    public async Task<RestorePointInfo> BackupAsync(string group, params (string Key, byte[] Content)[] files)
    {
        using var session = Repo.BeginBackup(group, "vm-" + group);
        foreach (var (key, content) in files)
        {
            var src = WriteSource("src-" + key, content);
            await session.AddFileAsync(key, src, new SourceFileInfo(src, "raw", null, content.Length), null, CancellationToken.None);
        }
        session.AttachMetadata("domain.xml", $"<domain><name>{group}</name></domain>");
        return session.Commit();
    }

    public async Task<byte[]> RestoreAsync(string pointId, string key)
    {
        var target = Path_($"restored-{Guid.NewGuid():N}");
        await Repo.RestoreFileAsync(pointId, key, target, null, CancellationToken.None);
        var bytes = File.ReadAllBytes(target);
        File.Delete(target);
        return bytes;
    }

    public static byte[] Content(int seed, int blocks, int extra = 0) =>
        TestFiles.ImageLike(new Random(seed), (blocks * BlockSize) + extra, BlockSize);

    public static byte[] Edit(int seed, byte[] old, TestFiles.Edit edit) => TestFiles.Apply(new Random(seed), old, edit, BlockSize);

    public void Dispose()
    {
        try
        {
            Directory.Delete(Root, recursive: true);
        }
        catch (IOException)
        {
        }
    }
}
