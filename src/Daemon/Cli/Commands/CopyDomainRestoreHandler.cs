using Backupd.Daemon.Libvirt;
using Backupd.Daemon.Offsite;
using Backupd.Daemon.Restore;
using Backupd.Storage.Catalog;
using Backupd.Storage.Offsite;
using System.CommandLine;

namespace Backupd.Daemon.Cli.Commands;

/// <summary>
/// `backupd restore --domain D --from TARGET [--point ID | --at TIME] [--disk vda]... (--to DIR [--flatten] | --as-domain NEW
/// [--images-dir DIR] | --in-place --force)`: a whole domain from a copy repository, the point found in the copy itself
/// (its index holds the files and the domain XML), so it works on a host whose catalog and repository are gone. The
/// same <see cref="DomainRestore"/> as from the local repository, over a <see cref="CopyRestoreSource"/>.
/// </summary>
internal static class CopyDomainRestoreHandler
{
    public static bool Applies(ParseResult parse) => parse.GetValue(DomainRestoreHandler.Domain) is not null;

    public static Task<int> RunAsync(ParseResult parse, CancellationToken ct) => RepositoryCli.GuardAsync("restore", async () =>
    {
        var json = parse.GetValue(GlobalOptions.Json);
        DomainRestoreHandler.CheckUsage(parse, parse.GetValue(FileRestoreHandler.To)?.FullName, parse.GetValue(DomainRestoreHandler.AsDomain),
            parse.GetValue(DomainRestoreHandler.InPlace), parse.GetValue(DomainRestoreHandler.Flatten));
        if (parse.GetValue(DomainRestoreHandler.Instant))
            throw new CliFailureException(FailureKind.Usage, "--instant runs on the local repository's images; with --from restore with --as-domain (without --instant)");
        using var copy = OffsiteCli.Open(parse.GetValue(CopyRestoreHandler.From)!, parse.GetValue(CopyRestoreHandler.Key), create: false);
        var header = SelectPoint(copy, parse.GetValue(DomainRestoreHandler.Domain)!, parse.GetValue(FileRestoreHandler.Point), parse.GetValue(DomainRestoreHandler.At));
        var plan = RestorePlan.Build(header.PointId, CopyRestoreSource.Files(header), parse.GetValue(DomainRestoreHandler.Disk) is { Length: > 0 } disks ? disks : null);
        if (plan.Count == 0)
            throw new CliFailureException(FailureKind.NotFound, $"the copy of {header.PointId} has no disk files");
        var domain = new DomainRow { Uuid = Guid.TryParse(header.GroupId, out var uuid) ? uuid : Guid.Empty, Name = header.GroupName };
        header.Metadata.TryGetValue(RepositoryRecords.DomainXmlMetadata, out var xml);
        // No configuration is needed (a rebuilt host may have none yet): libvirt's default URI then.
        var outcome = await DomainRestoreHandler.RestoreModeAsync(parse, new DomainRestore(new CopyRestoreSource(copy)), domain.Uuid, header.PointId, xml, plan,
            $"restore {domain.Name} {header.PointId} from {copy.Location}",
            () => CatalogBackupHandler.Choose(parse, "restore").UseCatalog ? GlobalOptions.LoadConfig(parse).LibvirtUri : "qemu:///system",
            () => parse.GetValue(DomainRestoreHandler.StagingDir) is { } staging ? Path.GetFullPath(staging) : null, ct);
        DomainRestoreHandler.Print(outcome, domain, json);
        return ExitCodes.Ok;
    });

    /// <summary>The copied point of <paramref name="domain"/> (name or UUID): --point, else the newest at or before --at, else the newest.</summary>
    private static CopyIndexHeader SelectPoint(CopyRepository copy, string domain, string? pointId, string? at)
    {
        bool Of(CopyIndexHeader h) => string.Equals(h.GroupId, domain, StringComparison.OrdinalIgnoreCase) || h.GroupName == domain;
        if (pointId is not null)
        {
            if (at is not null) throw new CliFailureException(FailureKind.Usage, "give --point ID or --at TIME, not both");
            var header = copy.ReadHeader(pointId);
            return Of(header) ? header
                : throw new CliFailureException(FailureKind.Usage, $"the copy of {pointId} in {copy.Location} belongs to {header.GroupName} ({header.GroupId}), not {domain}");
        }
        var points = copy.List().Where(Of).OrderByDescending(h => h.CreatedAt).ThenByDescending(h => h.Sequence).ToList();
        if (points.Count == 0)
            throw new CliFailureException(FailureKind.NotFound, $"{copy.Location} holds no copied point of {domain}");
        if (at is null) return points[0];
        var time = Catalog.CatalogCli.ParseTime(at, "--at");
        return points.FirstOrDefault(h => h.CreatedAt <= time)
            ?? throw new CliFailureException(FailureKind.NotFound, $"{copy.Location} holds no point of {domain} taken at or before {time.UtcDateTime:yyyy-MM-dd HH:mm:ss}Z");
    }
}
