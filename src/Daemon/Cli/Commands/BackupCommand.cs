using System.CommandLine;
using Backupd.Daemon.Workflow;
using Backupd.Policies.Model;

namespace Backupd.Daemon.Cli.Commands;

/// <summary>
/// `backupd backup`: one command, one handler per form. The form is chosen by its defining option
/// (--domain: live backup of a VM; --file: one file into a repository). Another form is one more branch below.
/// </summary>
public static class BackupCommand
{
    public static readonly Option<string?> Domain = new("--domain")
    {
        Description = "Live backup of this libvirt domain (name or UUID); a shut-off domain is copied as it rests",
    };

    public static readonly Option<string?> To = new("--to")
    {
        Description = "Repository directory to write the restore point into (created if missing)",
    };

    public static readonly Option<string[]> Disk = new("--disk")
    {
        Description = "Only these disk targets (repeat: --disk vda --disk vdb); default every eligible disk",
        AllowMultipleArgumentsPerToken = true,
    };

    public static readonly Option<string[]> ExcludeDisk = new("--exclude-disk")
    {
        Description = "Leave these disk targets out (repeat: --exclude-disk vdb --exclude-disk vdc); skipped with reason 'excluded by request'",
        AllowMultipleArgumentsPerToken = true,
    };

    public static readonly Option<QuiesceMode> Quiesce = new("--quiesce")
    {
        Description = "Freeze guest filesystems via the guest agent: required, preferred (fall back to crash-consistent) or off",
        DefaultValueFactory = _ => QuiesceMode.Preferred,
    };

    public static readonly Option<bool> Full = new("--full")
    {
        Description = "Read every disk in full even where the last checkpoint's dirty bitmap would allow an incremental read, and count " +
            "blocks that changed although the bitmap called them clean (the safety net: must be 0); the policy's full-every does this periodically",
    };

    /// <summary>--bandwidth RATE: the copy's reads (bytes per second, at least 1 MiB/s like a policy's rates); null when not given.</summary>
    public static readonly Option<long?> Bandwidth = RateOption("--bandwidth",
        "Limit the copy's reads to RATE (50M or 50MiB/s = 50 MiB/s; at least 1M); default unlimited. The commit has its own --commit-bandwidth");

    /// <summary>--commit-bandwidth RATE: the active block commit's rate; unlimited by default, like a policy without bandwidth.commit.</summary>
    public static readonly Option<long?> CommitBandwidth = RateOption("--commit-bandwidth",
        "Limit each disk's active commit (the merge of guest writes back into the image) to RATE; default unlimited, so the VM leaves its overlay as soon as possible");

    internal static Option<long?> RateOption(string name, string description) => new(name)
    {
        Description = description,
        HelpName = "RATE",
        CustomParser = r =>
        {
            if (Policies.Loading.Units.TryParseRate(r.Tokens[0].Value, out var rate) && rate >= 1 << 20) return rate;
            r.AddError($"{name} expects a rate of at least 1MiB/s like 50M, 50MiB/s or 1GiB/s, got '{r.Tokens[0].Value}'");
            return null;
        },
    };

    /// <summary>
    /// The workflow options with --bandwidth on the copy and --commit-bandwidth on the commit (each unchanged when not given).
    /// Separate because a throttled commit keeps the guest on its overlay for as long as its writes take to merge.
    /// </summary>
    public static WorkflowOptions WithBandwidth(ParseResult parse, WorkflowOptions options) => options with
    {
        CopyBandwidth = parse.GetValue(Bandwidth) ?? options.CopyBandwidth,
        CommitBandwidth = parse.GetValue(CommitBandwidth) ?? options.CommitBandwidth,
    };

    public static Command Create()
    {
        var command = new Command("backup", "Back up now: a running or shut-off VM (--domain), or a single file (--file)");
        command.Options.Add(Domain);
        command.Options.Add(To);
        command.Options.Add(Disk);
        command.Options.Add(ExcludeDisk);
        command.Options.Add(Quiesce);
        command.Options.Add(Full);
        command.Options.Add(Bandwidth);
        command.Options.Add(CommitBandwidth);
        command.Options.Add(GlobalOptions.Json);
        FileBackupHandler.AddOptions(command);
        CatalogBackupHandler.AddOptions(command);
        RepositoryRunOptions.AddOptions(command);
        command.SetAction(async (parse, ct) =>
        {
            if (parse.GetValue(Domain) is not null && FileBackupHandler.Applies(parse))
                throw Usage("give either --domain or --file, not both");
            if (parse.GetValue(Domain) is not null)
            {
                RefuseOptionsOfOtherForms(parse, "--domain");
                // Through the catalog (lock, run rows, restore point) whenever a daemon configuration exists.
                var (useCatalog, note) = CatalogBackupHandler.Choose(parse);
                if (useCatalog) return await CatalogBackupHandler.RunAsync(parse, ct);
                await Console.Error.WriteLineAsync(note);
                return await LiveBackupHandler.RunAsync(parse, ct);
            }
            if (FileBackupHandler.Applies(parse))
            {
                RefuseOptionsOfOtherForms(parse, "--file");
                return await FileBackupHandler.RunAsync(parse, ct);
            }
            throw Usage("say what to back up: --domain NAME --to REPOSITORY_DIR, or --file PATH --to REPOSITORY_DIR (see backupd backup --help)");
        });
        return command;
    }

    /// <summary>
    /// The options only one form takes, by the form's defining option (--to, --json and --config go with every
    /// form). An option given to the other form would be silently ignored: it is refused instead (docs/cli.md).
    /// </summary>
    internal static IReadOnlyList<(string Form, Option[] Options)> FormOptions { get; } =
    [
        ("--domain", [Disk, ExcludeDisk, Quiesce, Full, Bandwidth, CommitBandwidth, CatalogBackupHandler.NoCatalog]),
        ("--file", [FileBackupHandler.BlockSize]),
    ];

    /// <summary>Throws a usage error naming the first option given on the command line that belongs to another form than <paramref name="form"/>.</summary>
    internal static void RefuseOptionsOfOtherForms(ParseResult parse, string form)
    {
        foreach (var (owner, options) in FormOptions)
        {
            if (owner == form) continue;
            // Implicit: not on the command line, only its default (--quiesce preferred).
            if (options.FirstOrDefault(o => parse.GetResult(o) is { Implicit: false }) is { } given)
                throw Usage($"{given.Name} does not apply to a backup with {form}; it is an option of backup {owner}");
        }
    }

    private static CliFailureException Usage(string message) => new(FailureKind.Usage, message);
}
