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
    /// <summary>A failure as printed: its kind (a kebab-case word scripts can switch on) and the exit code it maps to.</summary>
    public sealed record Failure(FailureKind Kind, string Message)
    {
        /// <summary><see cref="ExitCodes.For"/> the kind, unless a command returned a code of its own.</summary>
        public int ExitCode { get; init; } = ExitCodes.For(Kind);
    }

    /// <summary>The errors any command can meet, as failures; null for anything else (a crash).</summary>
    public static Failure? Classify(Exception e) => e switch
    {
        CliFailureException f => new(f.Kind, f.Message),
        ConfigException c => new(FailureKind.Config, c.Message),
        BackupRefusedException r => new(KindOf(r.Kind), r.Message),
        DomainBusyException b => new(FailureKind.Busy, b.Message),
        DomainNotFoundException n => new(FailureKind.DomainNotFound, n.Message),
        CatalogException c => new(FailureKind.Catalog, c.Message),
        Restore.RestoreException r => new(r.Kind, r.Message),
        BackupFailedException f => new(f.NeedsAttention ? FailureKind.NeedsAttention : FailureKind.Failed, f.Message),
        PointNotRecordedException p => new(FailureKind.Failed, p.Message),
        Storage.Repository.RepositoryBusyException b => new(FailureKind.Busy, b.Message),
        Storage.Repository.RestorePointNotFoundException n => new(FailureKind.NotFound, n.Message),
        Storage.Repository.RepositoryCorruptException c => new(FailureKind.Damaged, c.Message),
        Storage.Delta.CorruptDataException c => new(FailureKind.Damaged, c.Message),
        Images.QemuImgException q => new(FailureKind.Failed, q.Message),
        Libvirt.LibvirtException l => new(FailureKind.Libvirt, $"libvirt: {l.Message}"),
        NpgsqlException n => new(FailureKind.Catalog, $"catalog: {n.Message} (check 'catalog-connection' in the configuration and that PostgreSQL runs; `backupd doctor`)"),
        _ => null,
    };

    /// <summary>A refused live backup's failure kind: the refusal itself (docs/cli.md lists them).</summary>
    public static FailureKind KindOf(RefusalKind refusal) => refusal switch
    {
        RefusalKind.DomainNotFound => FailureKind.DomainNotFound,
        RefusalKind.BadRequest => FailureKind.BadRequest,
        RefusalKind.TargetUnavailable => FailureKind.TargetUnavailable,
        RefusalKind.Busy => FailureKind.Busy,
        RefusalKind.NeedsRecovery => FailureKind.NeedsRecovery,
        RefusalKind.QuiesceUnavailable => FailureKind.QuiesceUnavailable,
        RefusalKind.InsufficientSpace => FailureKind.InsufficientSpace,
        _ => FailureKind.Failed,
    };

    public static void WriteJson(Failure failure) =>
        JsonOutput.Write(new { error = failure.Message, kind = ExitCodes.Name(failure.Kind), exitCode = failure.ExitCode });
}
