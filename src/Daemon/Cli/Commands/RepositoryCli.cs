using Backupd.Daemon.Cli.Catalog;
using Backupd.Storage.Delta;
using Backupd.Storage.Repository;
using Spectre.Console;

namespace Backupd.Daemon.Cli.Commands;

/// <summary>What the repository-level handlers share: opening, error → exit code mapping, the progress bar.</summary>
internal static class RepositoryCli
{
    /// <summary>The group that file-level backups (`backup --file`) go into.</summary>
    public const string FilesGroup = "files";

    public static bool IsRepository(string dir) => BackupRepository.Exists(dir);

    /// <summary>
    /// Runs a repository operation; its failures become <see cref="CliFailureException"/>s of the kind
    /// the repository commands document, which <see cref="CommandTree"/> reports (stderr, JSON) like any other.
    /// </summary>
    public static Task<int> GuardAsync(string command, Func<Task<int>> action) => GuardAsync<int>(command, action);

    /// <summary>Runs <paramref name="action"/>; repository exceptions become <see cref="CliFailureException"/>s of their kind.</summary>
    public static async Task<T> GuardAsync<T>(string command, Func<Task<T>> action)
    {
        try
        {
            return await action();
        }
        catch (Exception e) when (KindOf(e) is { } kind)
        {
            throw new CliFailureException(kind, e.Message) { Command = command };
        }
    }

    /// <summary>The repository commands also treat file-system errors as their own failures (not crashes); the exit code follows from the kind.</summary>
    private static FailureKind? KindOf(Exception e) => e switch
    {
        CliFailureException => null,
        RepositoryBusyException => FailureKind.Busy,
        RestorePointNotFoundException or FileNotFoundException or DirectoryNotFoundException => FailureKind.NotFound,
        RepositoryCorruptException or CorruptDataException => FailureKind.Damaged,
        ArgumentException => FailureKind.Usage,
        RepositoryException or IOException or UnauthorizedAccessException => FailureKind.Failed,
        _ => null,
    };

    /// <summary>Ends the command with a failure of <paramref name="kind"/> (reported by <see cref="CommandTree"/>).</summary>
    public static int Fail(string command, string message, FailureKind kind) => throw new CliFailureException(kind, message) { Command = command };

    /// <summary>Runs <paramref name="work"/> with a progress bar when stdout is a terminal (and not --json), plainly otherwise.</summary>
    public static async Task<T> WithProgressAsync<T>(string label, long total, bool json, Func<IProgress<long>?, Task<T>> work)
    {
        if (json || Console.IsOutputRedirected || total <= 0)
        {
            return await work(null);
        }
        T result = default!;
        await AnsiConsole.Progress()
            .Columns(new TaskDescriptionColumn(), new ProgressBarColumn(), new PercentageColumn(), new TransferSpeedColumn(), new RemainingTimeColumn())
            .StartAsync(async ctx =>
            {
                var task = ctx.AddTask(Markup.Escape(label), maxValue: total);
                result = await work(new SyncProgress(v => task.Value = v));
            });
        return result;
    }

    /// <summary>Reports synchronously (System.Progress posts to the thread pool and can arrive after completion).</summary>
    private sealed class SyncProgress(Action<long> report) : IProgress<long>
    {
        public void Report(long value) => report(value);
    }

    public static string Size(long bytes) => bytes switch
    {
        >= 1L << 30 => $"{bytes / (double)(1L << 30):F2} GiB",
        >= 1L << 20 => $"{bytes / (double)(1L << 20):F1} MiB",
        >= 1L << 10 => $"{bytes / 1024.0:F1} KiB",
        _ => $"{bytes} B",
    };
}
