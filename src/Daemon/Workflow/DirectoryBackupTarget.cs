using System.Diagnostics;
using System.Security.Cryptography;
using System.Text.Json;

namespace Backupd.Daemon.Workflow;

/// <summary>
/// Interim target until the versioned repository lands: each restore point is a directory of plain
/// copies (sparse: zero blocks become holes) plus a manifest with SHA-256 digests. Written under a
/// hidden staging name and renamed into place on commit, so a point is either whole or absent.
/// Layout: DIR/&lt;groupId&gt;/&lt;pointId&gt;/&lt;fileKey&gt;, manifest.json, metadata files.
/// </summary>
public sealed class DirectoryBackupTarget(string directory) : IBackupTarget
{
    private const int BlockSize = 1 << 20;

    public string Description => directory;

    public void EnsureWritable()
    {
        try
        {
            Directory.CreateDirectory(directory);
            var probe = Path.Combine(directory, $".backupd-probe-{Environment.ProcessId}");
            File.WriteAllText(probe, "probe");
            File.Delete(probe);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new BackupRefusedException(RefusalKind.TargetUnavailable, $"repository directory '{directory}' is not writable: {e.Message}");
        }
    }

    public IBackupSession Begin(string groupId, string groupName)
    {
        var group = Path.Combine(directory, groupId);
        Directory.CreateDirectory(group);
        FileStream lockFile;
        try { lockFile = new FileStream(Path.Combine(group, ".lock"), FileMode.OpenOrCreate, FileAccess.ReadWrite, FileShare.None); }
        catch (IOException)
        {
            throw new BackupRefusedException(RefusalKind.Busy, $"another backup of '{groupName}' is writing to '{group}'");
        }
        return new Session(group, groupName, lockFile);
    }

    private sealed class Session : IBackupSession
    {
        private readonly string group;
        private readonly string pointId;
        private readonly string staging;
        private readonly FileStream lockFile;
        private readonly List<object> manifest = [];
        private bool committed;

        public Session(string group, string groupName, FileStream lockFile)
        {
            this.group = group;
            this.lockFile = lockFile;
            pointId = $"{DateTime.UtcNow:yyyyMMdd'T'HHmmssfff'Z'}";
            staging = Path.Combine(group, $".{pointId}.partial");
            Directory.CreateDirectory(staging);
            File.WriteAllText(Path.Combine(staging, "group-name"), groupName);
        }

        public async Task<StoredFile> AddFileAsync(string fileKey, ChainImage image, IProgress<long>? progress, CancellationToken ct)
        {
            var clock = Stopwatch.StartNew();
            var buffer = new byte[BlockSize];
            long read = 0, written = 0;
            using var hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
            await using (var source = new FileStream(image.Path, FileMode.Open, FileAccess.Read, FileShare.ReadWrite, 1, FileOptions.SequentialScan))
            await using (var target = new FileStream(Path.Combine(staging, fileKey), FileMode.CreateNew, FileAccess.Write, FileShare.None, 1))
            {
                int n;
                while ((n = await ReadBlockAsync(source, buffer, ct)) > 0)
                {
                    var block = buffer.AsMemory(0, n);
                    hash.AppendData(block.Span);
                    if (block.Span.ContainsAnyExcept((byte)0))
                    {
                        await target.WriteAsync(block, ct);
                        written += n;
                    }
                    else
                    {
                        target.Seek(n, SeekOrigin.Current); // a hole
                    }
                    read += n;
                    progress?.Report(read);
                }
                target.SetLength(read);
                target.Flush(flushToDisk: true);
            }
            var digest = "sha256:" + Convert.ToHexStringLower(hash.GetHashAndReset());
            manifest.Add(new { fileKey, image.Path, image.Format, image.BackingFile, image.VirtualSize, size = read, digest });
            return new StoredFile(fileKey, read, written, digest, clock.Elapsed);
        }

        private static async Task<int> ReadBlockAsync(FileStream source, byte[] buffer, CancellationToken ct)
        {
            var total = 0;
            while (total < buffer.Length)
            {
                var n = await source.ReadAsync(buffer.AsMemory(total), ct);
                if (n == 0) break;
                total += n;
            }
            return total;
        }

        public void AttachMetadata(string name, string content) => File.WriteAllText(Path.Combine(staging, name), content);

        public string Commit()
        {
            var manifestPath = Path.Combine(staging, "manifest.json");
            using (var stream = new FileStream(manifestPath, FileMode.CreateNew, FileAccess.Write))
            {
                JsonSerializer.Serialize(stream, manifest);
                stream.Flush(flushToDisk: true);
            }
            Directory.Move(staging, Path.Combine(group, pointId));
            committed = true;
            return pointId;
        }

        public void Dispose()
        {
            if (!committed && Directory.Exists(staging)) Directory.Delete(staging, recursive: true);
            lockFile.Dispose();
        }
    }
}
