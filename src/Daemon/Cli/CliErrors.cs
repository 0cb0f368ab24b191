using System.Text.Json;
using Backupd.Daemon.Cli.Catalog;
using Backupd.Daemon.Cli.Commands;
using Backupd.Daemon.Configuration;
using Backupd.Daemon.Runs;
using Backupd.Daemon.Workflow;
using Backupd.Storage.Catalog;
using Npgsql;

namespace Backupd.Daemon.Cli;

/// <summary>
/// How a command's failure is told, in one place (<see cref="CommandTree"/> uses it for every command):
/// its exit code, one line on stderr, and with --json one object on stdout,
/// <c>{"error": MESSAGE, "kind": KIND, "exitCode": N}</c> (docs/cli.md).
/// </summary>
public static class CliErrors
{
    /// <summary>A failure as printed: <paramref name="Kind"/> is a kebab-case word scripts can switch on.</summary>
    public sealed record Failure(int ExitCode, string Kind, string Message);

    /// <summary>The errors any command can meet, as failures; null for anything else (a crash).</summary>
    public static Failure? Classify(Exception e) => e switch
    {
        CliFailureException f => new(f.ExitCode, f.Kind ?? KindFor(f.ExitCode), f.Message),
        ConfigException c => new(ExitCodes.UsageOrConfig, "config", c.Message),
        BackupRefusedException r => new(LiveBackupHandler.ExitFor(r.Kind), Kebab(r.Kind), r.Message),
        DomainBusyException b => new(ExitCodes.Busy, "busy", b.Message),
        DomainNotFoundException n => new(ExitCodes.NotFound, "domain-not-found", n.Message),
        CatalogException c => new(ExitCodes.Failed, "catalog", c.Message),
        Restore.RestoreException r => new(r.ExitCode, KindFor(r.ExitCode), r.Message),
        BackupFailedException f => f.NeedsAttention ? new(ExitCodes.NeedsAttention, "needs-attention", f.Message) : new(ExitCodes.Failed, "failed", f.Message),
        PointNotRecordedException p => new(ExitCodes.Failed, "failed", p.Message),
        Storage.Repository.RepositoryBusyException b => new(ExitCodes.Busy, "busy", b.Message),
        Storage.Repository.RestorePointNotFoundException n => new(ExitCodes.NotFound, "not-found", n.Message),
        Storage.Repository.RepositoryCorruptException c => new(ExitCodes.Damaged, "damaged", c.Message),
        Storage.Delta.CorruptDataException c => new(ExitCodes.Damaged, "damaged", c.Message),
        Chains.ChainRefusedException c => new(c.ExitCode, c.Kind, c.Message),
        Libvirt.LibvirtException l => new(ExitCodes.Failed, "libvirt", $"libvirt: {l.Message}"),
        NpgsqlException n => new(ExitCodes.Failed, "catalog", $"catalog: {n.Message} (check 'catalog-connection' in the configuration and that PostgreSQL runs; `backupd doctor`)"),
        _ => null,
    };

    /// <summary>The kind an exit code stands for when nothing more precise is known.</summary>
    public static string KindFor(int exitCode) => exitCode switch
    {
        ExitCodes.UsageOrConfig => "usage",
        ExitCodes.NotFound => "not-found",
        ExitCodes.Busy => "busy",
        ExitCodes.Damaged => "damaged",
        ExitCodes.NeedsAttention => "needs-attention",
        ExitCodes.Cancelled => "cancelled",
        _ => "failed",
    };

    public static void WriteJson(Failure failure) =>
        JsonOutput.Write(new { error = failure.Message, kind = failure.Kind, exitCode = failure.ExitCode });

    private static string Kebab<T>(T value) where T : struct, Enum => JsonNamingPolicy.KebabCaseLower.ConvertName(value.ToString());
}
