using Backupd.Daemon.Workflow;
using Spectre.Console;

namespace Backupd.Daemon.Cli.Commands;

/// <summary>
/// Progress for the commands whose work has no byte total known up front (prune, forget) or several block jobs
/// (recover): a status line or one bar per merge, on a terminal only. With --json or redirected output nothing is
/// drawn, so scripts read exactly the result.
/// </summary>
internal static class TerminalProgress
{
    public static bool Enabled(bool json) => !json && !Console.IsOutputRedirected;

    /// <summary>Runs <paramref name="work"/> under a spinner whose text it sets (e.g. "removing P of D (2 removed)").</summary>
    public static async Task<T> WithStatusAsync<T>(bool json, string initial, Func<Action<string>, Task<T>> work)
    {
        if (!Enabled(json)) return await work(_ => { });
        T result = default!;
        await AnsiConsole.Status().StartAsync(Markup.Escape(initial), async context =>
        {
            result = await work(text => context.Status(Markup.Escape(text)));
        });
        return result;
    }

    /// <summary>Runs <paramref name="work"/> with one bar per live merge it reports (`recover` committing overlays back).</summary>
    public static async Task<T> WithCommitBarsAsync<T>(bool json, Func<Action<CommitProgress>?, Task<T>> work)
    {
        if (!Enabled(json)) return await work(null);
        T result = default!;
        await AnsiConsole.Progress()
            .Columns(new TaskDescriptionColumn(), new ProgressBarColumn(), new PercentageColumn(), new RemainingTimeColumn())
            .StartAsync(async context =>
            {
                var bars = new CommitBars(label => context.AddTask(Markup.Escape(label), maxValue: 1));
                result = await work(bars.Report);
                bars.Complete();
            });
        return result;
    }

    /// <summary>
    /// One bar per merge: a report for a disk whose bar is finished (another domain's vda, or a retry) starts a new
    /// bar. The factory is a parameter so the bookkeeping is testable without a console.
    /// </summary>
    internal sealed class CommitBars(Func<string, ProgressTask> add)
    {
        private readonly Dictionary<string, ProgressTask> _bars = [];

        public void Report(CommitProgress p)
        {
            if (p.Total <= 0) return;
            if (!_bars.TryGetValue(p.Target, out var bar) || bar.IsFinished)
                _bars[p.Target] = bar = add($"merge back {p.Target}");
            bar.MaxValue = p.Total;
            bar.Value = p.Done;
        }

        public IReadOnlyDictionary<string, ProgressTask> Bars => _bars;

        public void Complete()
        {
            foreach (var bar in _bars.Values) bar.Value = bar.MaxValue;
        }
    }
}
