using System.CommandLine;
using Backupd.Daemon.Cli.Catalog;
using Backupd.Storage.Catalog;
using Backupd.Storage.Repository;
using Spectre.Console;

namespace Backupd.Daemon.Cli.Commands;

/// <summary>
/// `backupd verify [--domain NAME] [--point ID]`: re-reads the catalog's restore points from their
/// repositories, checks every digest, and records the outcome of each point as a verify event.
/// Exit 5 (Damaged) with the first bad location when anything is wrong. Shares --point with the repository form.
/// </summary>
internal static class CatalogVerifyHandler
{
    public static readonly Option<string?> Domain = new("--domain") { Description = "Only this domain's restore points (name, former name or UUID)" };

    public sealed record PointVerdict(string PointId, string Domain, string Repository, bool Ok, string Detail);

    public static void AddOptions(Command command) => command.Options.Add(Domain);

    public static bool Applies(ParseResult parse) => parse.GetValue(RepositoryVerifyHandler.Repository) is null;

    public static Task<int> RunAsync(ParseResult parse, CancellationToken ct) => CatalogCli.RunAsync(parse, async (store, _) =>
    {
        var json = parse.GetValue(GlobalOptions.Json);
        var points = await SelectAsync(store, parse.GetValue(Domain), parse.GetValue(RepositoryVerifyHandler.Point), ct);
        if (points.Count == 0)
            throw new CliFailureException(FailureKind.NotFound, "no restore points to verify");
        var onePoint = parse.GetValue(RepositoryVerifyHandler.Point) is not null;
        var total = points.Sum(p => p.TotalFileSize);
        var verdicts = await RepositoryCli.WithProgressAsync("verify", total, json, async progress =>
        {
            var list = new List<PointVerdict>();
            long done = 0;
            foreach (var group in points.GroupBy(p => (p.Repository, p.DomainUuid)))
            {
                var offset = done;
                var relay = progress is null ? null : new Relay(v => progress.Report(offset + v));
                list.AddRange(await VerifyGroupAsync(group.Key.Repository, group.Key.DomainUuid, group.ToList(), onePoint, relay, ct));
                done += group.Sum(p => p.TotalFileSize);
            }
            return list;
        });

        foreach (var v in verdicts)
        {
            var point = points.First(p => p.Id == v.PointId);
            await store.RecordEventAsync(EventKinds.Verify, point.DomainUuid, v.PointId, v.Ok, v.Detail, ProcessIdentity.Current, ct);
        }
        var bad = verdicts.Where(v => !v.Ok).ToList();
        if (json)
        {
            JsonOutput.Write(new { ok = bad.Count == 0, points = verdicts });
        }
        else
        {
            var table = new Table().AddColumns("point", "domain", "result", "detail");
            foreach (var v in verdicts)
                table.AddRow(new Text(v.PointId), new Text(v.Domain), new Markup(v.Ok ? "[green]ok[/]" : "[red]DAMAGED[/]"), new Text(v.Detail));
            CatalogCli.Out.Write(table);
        }
        if (bad.Count == 0) return ExitCodes.Ok;
        await Console.Error.WriteLineAsync($"backupd verify: {bad.Count} of {verdicts.Count} restore point(s) damaged; first: {bad[0].PointId}: {bad[0].Detail}");
        return ExitCodes.Damaged;
    }, ct);

    private static async Task<IReadOnlyList<RestorePointSummary>> SelectAsync(CatalogStore store, string? domain, string? pointId, CancellationToken ct)
    {
        Guid? uuid = domain is null ? null : (await CatalogCli.ResolveDomainAsync(store, domain, ct)).Uuid;
        if (pointId is null) return await store.ListPointsAsync(uuid, null, ct);
        var detail = await store.GetPointAsync(pointId, ct) ?? throw new CliFailureException(FailureKind.NotFound, $"no restore point '{pointId}' in the catalog");
        if (uuid is { } u && detail.Point.DomainUuid != u)
            throw new CliFailureException(FailureKind.Usage, $"restore point {pointId} belongs to {detail.Point.DomainName}, not {domain}");
        return [detail.Point];
    }

    /// <summary>
    /// One repository group: verified once as a whole (each stored version read once), then each
    /// problem is charged to the points whose files are that version. A single point is verified alone.
    /// </summary>
    private static async Task<IReadOnlyList<PointVerdict>> VerifyGroupAsync(string repositoryDir, Guid domainUuid, List<RestorePointSummary> points, bool onePoint,
        IProgress<long>? progress, CancellationToken ct)
    {
        if (!RepositoryCli.IsRepository(repositoryDir))
            return points.Select(p => new PointVerdict(p.Id, p.DomainName, repositoryDir, false, $"{repositoryDir} is not a backupd repository (any more)")).ToList();
        using var repository = BackupRepository.Open(repositoryDir);
        VerifyReport report;
        try
        {
            report = await repository.VerifyAsync(domainUuid.ToString(), onePoint ? points[0].Id : null, progress, ct);
        }
        catch (RestorePointNotFoundException e)
        {
            return points.Select(p => new PointVerdict(p.Id, p.DomainName, repositoryDir, false, e.Message)).ToList();
        }
        var verdicts = new List<PointVerdict>();
        foreach (var p in points)
        {
            var info = repository.FindPoint(p.Id);
            if (info is null)
            {
                verdicts.Add(new PointVerdict(p.Id, p.DomainName, repositoryDir, false, $"the repository has no restore point {p.Id}"));
                continue;
            }
            var problem = report.Problems.FirstOrDefault(problem =>
                !problem.Contains(", file '", StringComparison.Ordinal) // group-wide problem
                || info.Files.Any(f => problem.Contains($"file '{f.FileKey}', version {f.VersionId}", StringComparison.Ordinal)));
            verdicts.Add(problem is null
                ? new PointVerdict(p.Id, p.DomainName, repositoryDir, true, $"{info.Files.Count} file(s), {CatalogCli.Size(info.Files.Sum(f => f.FileSize))} verified")
                : new PointVerdict(p.Id, p.DomainName, repositoryDir, false, problem));
        }
        return verdicts;
    }

    private sealed class Relay(Action<long> report) : IProgress<long>
    {
        public void Report(long value) => report(value);
    }
}
