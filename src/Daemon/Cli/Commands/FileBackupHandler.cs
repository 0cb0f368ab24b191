using System.CommandLine;
using System.Text;
using Backupd.Daemon.Images;
using Backupd.Storage.Repository;

namespace Backupd.Daemon.Cli.Commands;

/// <summary>`backupd backup --file PATH --to REPOSITORY_DIR`: one file as a new restore point of the "files" group. No daemon config needed.</summary>
internal static class FileBackupHandler
{
    public static readonly Option<FileInfo?> File = new("--file") { Description = "File to back up (a disk image or any file)" };
    /// <summary>--block-size SIZE: bytes or a size like a policy's block-size (64KiB, 1MiB); null when not given.</summary>
    public static readonly Option<int?> BlockSize = new("--block-size")
    {
        Description = $"Block size for a file's first backup (65536, 64KiB, 1MiB): {Storage.Delta.BlockHasher.BlockSizeRange}; default 64KiB",
        HelpName = "SIZE",
        CustomParser = r =>
        {
            if (Policies.Loading.Units.TryParseSize(r.Tokens[0].Value, out var bytes) && Storage.Delta.BlockHasher.IsValidBlockSize(bytes)) return (int)bytes;
            r.AddError($"--block-size expects {Storage.Delta.BlockHasher.BlockSizeRange}, like 65536, 64KiB or 1MiB; got '{r.Tokens[0].Value}'");
            return null;
        },
    };

    public static void AddOptions(Command command)
    {
        command.Options.Add(File);
        command.Options.Add(BlockSize);
    }

    public static bool Applies(ParseResult parse) => parse.GetValue(File) is not null;

    public static Task<int> RunAsync(ParseResult parse, CancellationToken ct) => RepositoryCli.GuardAsync("backup", async () =>
    {
        var file = parse.GetValue(File)!;
        var to = parse.GetValue(BackupCommand.To) is { } toPath ? new DirectoryInfo(toPath) : null;
        var json = parse.GetValue(GlobalOptions.Json);
        if (to is null)
        {
            return RepositoryCli.Fail("backup", "--to REPOSITORY_DIR is required with --file", FailureKind.Usage);
        }
        if (!file.Exists)
        {
            return RepositoryCli.Fail("backup", $"{file.FullName} does not exist or is not a regular file or block device", FailureKind.NotFound);
        }
        if (SourceLength.KindOf(file.FullName) == SourceKind.Other)
        {
            return RepositoryCli.Fail("backup", $"{file.FullName} is neither a regular file nor a block device (a character device, socket or pipe has no size to back up)", FailureKind.Usage);
        }
        var length = SourceLength.Of(file.FullName); // a block device's inode says 0 bytes
        using var repo = BackupRepository.Open(to.FullName);
        RepositoryRunOptions.Apply(parse, repo);
        if (parse.GetValue(BlockSize) is { } blockSize)
        {
            Storage.Delta.BlockHasher.ValidateBlockSize(blockSize);
            repo.BlockSize = blockSize;
        }
        var key = FileKeyFor(file.Name);
        var (format, backing) = QemuImg.DetectFormat(file.FullName);
        using var session = repo.BeginBackup(RepositoryCli.FilesGroup, "file-level backups", ct);
        var version = await RepositoryCli.WithProgressAsync($"backup {file.Name}", length, json, progress =>
            session.AddFileAsync(key, file.FullName, new SourceFileInfo(file.FullName, format, backing, length), progress, ct));
        var point = session.Commit();
        if (json)
        {
            JsonOutput.Write(new
            {
                pointId = point.PointId,
                file = key,
                source = file.FullName,
                format,
                fileSize = version.FileSize,
                bytesRead = version.BytesRead,
                bytesWritten = version.BytesWritten,
                mirrorBytesWritten = version.MirrorBytesWritten,
                undoBytesWritten = version.UndoBytesWritten,
                undoBytesUncompressed = version.UndoBytesUncompressed,
                blocksChanged = version.BlocksChanged,
                blockSize = version.BlockSize,
                seconds = Math.Round(version.Elapsed.TotalSeconds, 3),
                digest = version.Digest,
                scrubbedBlocks = version.Scrub?.BlocksChecked ?? 0,
                healedBlocks = version.Scrub?.HealedBlocks.Count ?? 0,
                healing = version.Scrub?.Describe(key),
            });
        }
        else
        {
            Console.WriteLine(point.PointId);
            if (!Console.IsOutputRedirected)
            {
                Console.Error.WriteLine($"{key}: read {RepositoryCli.Size(version.BytesRead)}, {version.BlocksChanged} blocks changed, wrote {RepositoryCli.Size(version.BytesWritten)} in {version.Elapsed.TotalSeconds:F2} s");
            }
        }
        if (version.Scrub?.Describe(key) is { } healing)
        {
            Console.Error.WriteLine($"backupd backup: {healing}"); // also with --json: stdout stays one object
        }
        return ExitCodes.Ok;
    });

    /// <summary>The file's name, with anything outside [A-Za-z0-9._-] replaced by '_' (and no leading '.').</summary>
    internal static string FileKeyFor(string name)
    {
        var sb = new StringBuilder(name.Length);
        foreach (var c in name)
        {
            sb.Append(char.IsAsciiLetterOrDigit(c) || c is '.' or '_' or '-' ? c : '_');
        }
        if (sb.Length == 0 || sb[0] == '.')
        {
            sb.Insert(0, '_');
        }
        return sb.Length > Names.MaxLength ? sb.ToString(0, Names.MaxLength) : sb.ToString();
    }
}
