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

    /// <summary>Runs a repository operation, turning its failures into a message on stderr and an exit code.</summary>
    public static async Task<int> GuardAsync(string command, Func<Task<int>> action)
    {
        try
        {
            return await action();
        }
        catch (RepositoryBusyException e)
        {
            return Fail(command, e.Message, ExitCodes.Busy);
        }
        catch (RestorePointNotFoundException e)
        {
            return Fail(command, e.Message, ExitCodes.NotFound);
        }
        catch (RepositoryCorruptException e)
        {
            return Fail(command, e.Message, ExitCodes.Damaged);
        }
        catch (CorruptDataException e)
        {
            return Fail(command, e.Message, ExitCodes.Damaged);
        }
        catch (ArgumentException e)
        {
            return Fail(command, e.Message, ExitCodes.UsageOrConfig);
        }
        catch (Exception e) when (e is FileNotFoundException or DirectoryNotFoundException)
        {
            return Fail(command, e.Message, ExitCodes.NotFound);
        }
        catch (Exception e) when (e is RepositoryException or IOException or UnauthorizedAccessException)
        {
            return Fail(command, e.Message, ExitCodes.Failed);
        }
    }

    public static int Fail(string command, string message, int code)
    {
        Console.Error.WriteLine($"backupd {command}: {message}");
        return code;
    }

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
