using System.CommandLine;
using Backupd.Daemon.Configuration;
using Backupd.Daemon.Workflow;
using Backupd.Storage.Repository;

namespace Backupd.Daemon.Cli.Commands;

/// <summary>
/// `backup` options about the repository side of a run: how long to wait for restores/verifies of the group
/// (before the snapshot) and the mirror scrub's cycle. Without them the configuration's values (or defaults) apply.
/// </summary>
internal static class RepositoryRunOptions
{
    public static readonly Option<TimeSpan?> ReaderWait = new("--reader-wait")
    {
        Description = "Wait up to DURATION (30s, 5m, ...) for restores and verifies of the VM's group to end before the snapshot; then refuse (exit 4). Default 5m or 'reader-wait' in the configuration",
        HelpName = "DURATION",
        CustomParser = r =>
        {
            if (Durations.TryParse(r.Tokens[0].Value, out var d)) return d;
            r.AddError($"--reader-wait expects a duration like 30s, 5m or 1h, got '{r.Tokens[0].Value}'");
            return null;
        },
    };

    public static readonly Option<int?> ScrubCycle = new("--scrub-cycle")
    {
        Description = "Re-read and check 1/N of the mirror's unchanged blocks, healing damaged ones from the source (every block once per N backups); 0 = only blocks verify listed. Default 64 or 'scrub-cycle' in the configuration",
        HelpName = "N",
        CustomParser = r =>
        {
            if (int.TryParse(r.Tokens[0].Value, System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out var n) && n <= 1 << 20) return n;
            r.AddError($"--scrub-cycle expects a whole number from 0 to {1 << 20}, got '{r.Tokens[0].Value}'");
            return null;
        },
    };

    public static void AddOptions(Command command)
    {
        command.Options.Add(ReaderWait);
        command.Options.Add(ScrubCycle);
    }

    public static WorkflowOptions Apply(ParseResult parse, WorkflowOptions options) => options with
    {
        ReaderWait = parse.GetValue(ReaderWait) ?? options.ReaderWait,
        ScrubCycle = parse.GetValue(ScrubCycle) ?? options.ScrubCycle,
    };

    public static void Apply(ParseResult parse, BackupRepository repository)
    {
        if (parse.GetValue(ReaderWait) is { } wait) repository.ReaderWait = wait;
        if (parse.GetValue(ScrubCycle) is { } cycle) repository.ScrubCycle = cycle;
    }
}
