using System.CommandLine;
using Backupd.Daemon.Cli.Catalog;
using Backupd.Daemon.Libvirt;
using Backupd.Daemon.Restore;
using Backupd.Storage.Catalog;
using Backupd.Storage.Repository;
using System.Text.Json;
using Microsoft.Extensions.Logging;
using Spectre.Console;

namespace Backupd.Daemon.Cli.Commands;

/// <summary>
/// `backupd restore --domain NAME [--point ID | --at TIME] [--disk vda]... (--to DIR [--flatten] | --as-domain NEW [--images-dir DIR] | --in-place --force)`:
/// finds the point in the catalog, reads it from its repository. Shares --point and --to with the file form.
/// </summary>
internal static class DomainRestoreHandler
{
    public static readonly Option<string?> Domain = new("--domain") { Description = "Domain whose restore point to restore (name, former name or UUID)" };
    public static readonly Option<string?> At = new("--at") { Description = "The newest point taken at or before TIME (ISO 8601, or a duration ago: 6h, 2d)" };
    public static readonly Option<string[]> Disk = new("--disk") { Description = "Only this disk (repeatable; default: every disk of the point)" };
    public static readonly Option<bool> Flatten = new("--flatten") { Description = "One standalone image per disk instead of the chain" };
    public static readonly Option<string?> AsDomain = new("--as-domain") { Description = "Define a new domain NEWNAME from the saved XML using the restored images (not started)" };
    public static readonly Option<string?> ImagesDir = new("--images-dir") { Description = "With --as-domain: write the new domain's images into DIR (created if missing; nothing in it is overwritten). Default: NEWNAME/ beside the original first disk image" };
    public static readonly Option<bool> TrustSavedXml = new("--trust-saved-xml")
    {
        Description = "With --as-domain: define the saved XML as it is (its emulator, host devices, host files, QEMU arguments); by default those are dropped or replaced",
    };
    public static readonly Option<bool> Instant = new("--instant")
    {
        Description = "With --as-domain: start NEWNAME at once on overlays over the point's images and stream the data in while it runs (block pull); the command returns when it no longer needs the repository",
    };
    public static readonly Option<long?> PullBandwidth = BackupCommand.RateOption("--bandwidth", "With --instant: limit the block pull to RATE (50M or 50MiB/s; at least 1M), leaving the guest more I/O while it starts; default unlimited");
    public static readonly Option<bool> InPlace = new("--in-place") { Description = "Put the point's images back where they were taken from (shut-off domain only; needs --force)" };
    public static readonly Option<bool> Force = new("--force") { Description = "Confirm --in-place" };
    public static readonly Option<bool> KeepOld = new("--keep-old") { Description = "With --in-place: keep the replaced images as *.before-restore-TIME" };
    public static readonly Option<string?> StagingDir = new("--staging-dir")
    {
        Description = "With --in-place: where the image of a disk on a block device is staged and verified before it is written onto the device (default: STATE_DIRECTORY/restore-staging)",
    };

    public static void AddOptions(Command command)
    {
        foreach (var option in new Option[] { Domain, At, Disk, Flatten, AsDomain, ImagesDir, TrustSavedXml, Instant, PullBandwidth, InPlace, Force, KeepOld, StagingDir })
            command.Options.Add(option);
    }

    public static bool Applies(ParseResult parse) => parse.GetValue(Domain) is not null;

    public static Task<int> RunAsync(ParseResult parse, CancellationToken ct) => CatalogCli.RunAsync(parse, async (store, config) =>
    {
        var json = parse.GetValue(GlobalOptions.Json);
        var to = parse.GetValue(FileRestoreHandler.To)?.FullName;
        var asDomain = parse.GetValue(AsDomain);
        var inPlace = parse.GetValue(InPlace);
        var flatten = parse.GetValue(Flatten);
        CheckUsage(parse, to, asDomain, inPlace, flatten);

        var domain = await CatalogCli.ResolveDomainAsync(store, parse.GetValue(Domain)!, ct);
        var point = await SelectPointAsync(store, domain, parse.GetValue(FileRestoreHandler.Point), parse.GetValue(At), ct);
        var detail = await store.GetPointAsync(point.Id, ct) ?? throw new CliFailureException(FailureKind.NotFound, $"restore point {point.Id} vanished from the catalog");
        var plan = RestorePlan.Build(point.Id, detail.Files, parse.GetValue(Disk) is { Length: > 0 } disks ? disks : null);
        if (plan.Count == 0)
            throw new CliFailureException(FailureKind.NotFound, $"restore point {point.Id} has no disk files");
        if (!RepositoryCli.IsRepository(point.Repository))
            throw new CliFailureException(FailureKind.NotFound, $"restore point {point.Id} lives in {point.Repository}, which is not a backupd repository (any more)");

        if (parse.GetValue(Instant))
            return await InstantAsync(parse, config, store, domain, point, detail, plan, asDomain!, json, ct);
        using var repository = BackupRepository.Open(point.Repository);
        var outcome = await RestoreModeAsync(parse, new DomainRestore(new RepositoryRestoreSource(repository)), domain.Uuid, point.Id, detail.DomainXml, plan,
            $"restore {domain.Name} {point.Id}", () => config.LibvirtUri, () => DeviceStaging(parse, config.StateDirectory), ct);
        Print(outcome, domain, json);
        return ExitCodes.Ok;
    }, ct);

    /// <summary>
    /// The chosen mode (--to, --as-domain, --in-place; checked by <see cref="CheckUsage"/>) of a restore from any
    /// source, with progress; libvirt is opened (at <paramref name="libvirtUri"/>) only by the modes that need it.
    /// </summary>
    internal static async Task<RestoreOutcome> RestoreModeAsync(ParseResult parse, DomainRestore restore, Guid domainUuid, string pointId, string? savedXml,
        IReadOnlyList<PlannedDisk> plan, string label, Func<string> libvirtUri, Func<string?> staging, CancellationToken ct)
    {
        var json = parse.GetValue(GlobalOptions.Json);
        var flatten = parse.GetValue(Flatten);
        var total = plan.SelectMany(d => d.Chain).Sum(f => f.FileSize);
        if (parse.GetValue(FileRestoreHandler.To)?.FullName is { } to)
        {
            return await RepositoryCli.WithProgressAsync(label, total, json, p => restore.ToDirectoryAsync(pointId, plan, to, flatten, p, ct));
        }
        using var hypervisor = LibvirtHypervisor.Open(libvirtUri());
        return parse.GetValue(AsDomain) is { } asDomain
            ? await RepositoryCli.WithProgressAsync(label, total, json, p => restore.AsDomainAsync(hypervisor, pointId, savedXml, plan, asDomain, flatten, parse.GetValue(ImagesDir), parse.GetValue(TrustSavedXml), p, ct))
            : await RepositoryCli.WithProgressAsync(label, total, json, p => restore.InPlaceAsync(hypervisor, domainUuid, pointId, plan, parse.GetValue(KeepOld), p, ct, staging()));
    }

    internal static void CheckUsage(ParseResult parse, string? to, string? asDomain, bool inPlace, bool flatten)
    {
        var modes = (to is not null ? 1 : 0) + (asDomain is not null ? 1 : 0) + (inPlace ? 1 : 0);
        if (modes != 1)
            throw new CliFailureException(FailureKind.Usage, "restore --domain needs exactly one of --to DIR, --as-domain NEWNAME, --in-place --force");
        if (parse.GetValue(FileRestoreHandler.Repository) is not null || parse.GetValue(FileRestoreHandler.File) is not null)
            throw new CliFailureException(FailureKind.Usage, "--domain restores from the catalog; --repository/--file are the file form: use one or the other");
        if (parse.GetValue(FileRestoreHandler.Point) is not null && parse.GetValue(At) is not null)
            throw new CliFailureException(FailureKind.Usage, "give --point ID or --at TIME, not both");
        if (inPlace && !parse.GetValue(Force))
            throw new CliFailureException(FailureKind.Usage, "--in-place replaces the domain's current images: add --force to confirm (the domain must be shut off)");
        if (flatten && inPlace)
            throw new CliFailureException(FailureKind.Usage, "--flatten applies to --to and --as-domain; --in-place restores the chain as it was");
        if (parse.GetValue(ImagesDir) is not null && asDomain is null)
            throw new CliFailureException(FailureKind.Usage, "--images-dir only applies to --as-domain (--to DIR already names where the files go)");
        if (parse.GetValue(TrustSavedXml) && asDomain is null)
            throw new CliFailureException(FailureKind.Usage, "--trust-saved-xml only applies to --as-domain (the other modes define no domain)");
        if (parse.GetValue(Instant) && (asDomain is null || flatten))
            throw new CliFailureException(FailureKind.Usage, "--instant only applies to --as-domain NEWNAME (without --flatten: the pulled overlay is the standalone image)");
        if (parse.GetValue(PullBandwidth) is not null && !parse.GetValue(Instant))
            throw new CliFailureException(FailureKind.Usage, "--bandwidth only applies to --instant (it limits the block pull)");
        if (parse.GetValue(KeepOld) && !inPlace)
            throw new CliFailureException(FailureKind.Usage, "--keep-old only applies to --in-place");
        if (parse.GetValue(StagingDir) is not null && !inPlace)
            throw new CliFailureException(FailureKind.Usage, "--staging-dir only applies to --in-place");
    }

    /// <summary>
    /// --as-domain NEW --instant: the source domain's run lock and a run of kind instant-restore (progress of the pull in
    /// `status`), NEW started on overlays, then the pull to the end (Drills/InstantRestore).
    /// </summary>
    private static async Task<int> InstantAsync(ParseResult parse, Configuration.DaemonConfig config, CatalogStore store, DomainRow domain, RestorePointSummary point,
        RestorePointDetail detail, IReadOnlyList<PlannedDisk> plan, string newName, bool json, CancellationToken ct)
    {
        var directory = parse.GetValue(ImagesDir) is { } given ? Path.GetFullPath(given)
            : Path.Combine(Path.GetDirectoryName(plan[0].Top.SourcePath) is { } p && !p.StartsWith("/dev", StringComparison.Ordinal) ? p
                : throw new CliFailureException(FailureKind.Usage, $"{plan[0].Top.SourcePath} is a block device: choose where the new domain's images go with --images-dir"), newName);
        using var loggers = CliLogging.Create();
        var logger = loggers.CreateLogger("backupd.restore");
        var source = new DomainInfo(domain.Uuid.ToString(), domain.Name, DomainRunState.NoState, null, true);
        await using var run = await Chains.MaintenanceRun.BeginAsync(config.StateDirectory, config.CatalogConnectionString, source, RunKinds.InstantRestore, "manual", logger, ct);
        if (run.RunId is { } id) await store.SetRunPointAsync(id, point.Id, ct);
        using var repository = BackupRepository.Open(point.Repository);
        using var hypervisor = LibvirtHypervisor.Open(config.LibvirtUri);
        var instant = new Drills.InstantRestore(hypervisor, new Drills.DrillJournal(config.StateDirectory), logger);
        Drills.InstantOutcome outcome;
        try
        {
            outcome = await instant.RunAsync(repository, domain.Uuid, domain.Name, point.Id, detail.DomainXml, plan, newName, directory, parse.GetValue(TrustSavedXml),
                parse.GetValue(PullBandwidth), run.Report, started => { if (!json) Console.WriteLine($"instant restore {newName}: journaled as {started.Id}, starting"); }, ct);
        }
        catch (Exception e) when (e is Drills.DrillException or LibvirtException or RestoreException or RepositoryException)
        {
            if (run.RunId is { } failed) await store.FinishRestoreRunAsync(failed, false, null, e.Message, JsonSerializer.Serialize(new { pointId = point.Id, newDomain = newName, error = e.Message }, JsonOutput.Options), CancellationToken.None);
            throw;
        }
        if (run.RunId is { } done) await store.FinishRestoreRunAsync(done, true, null, null, JsonSerializer.Serialize(outcome, JsonOutput.Options), CancellationToken.None);
        if (json)
        {
            JsonOutput.Write(new { domain = domain.Name, domainUuid = domain.Uuid, outcome.PointId, mode = "instant", outcome.NewDomainName, outcome.NewDomainUuid, outcome.Backing,
                startedAfterSeconds = outcome.StartedAfter.TotalSeconds, standaloneAfterSeconds = outcome.StandaloneAfter?.TotalSeconds, outcome.Disks, outcome.Changes });
            return ExitCodes.Ok;
        }
        foreach (var c in outcome.Changes) Console.WriteLine($"{c.Action}: {c.Element}: {c.Reason}");
        AnsiConsole.MarkupLine($"[bold]{Markup.Escape(newName)}[/] ({outcome.NewDomainUuid}) started after {outcome.StartedAfter.TotalSeconds:0.0} s on {Markup.Escape(outcome.Backing)} images of point {Markup.Escape(point.Id)}; " +
            $"standalone after {outcome.StandaloneAfter?.TotalSeconds:0.0} s ({string.Join(", ", outcome.Disks.Select(d => d.ImagePath))})");
        return ExitCodes.Ok;
    }

    /// <summary>The given directory, or the state directory's restore-staging (created: it is ours).</summary>
    private static string DeviceStaging(ParseResult parse, string stateDirectory)
    {
        if (parse.GetValue(StagingDir) is { } given) return Path.GetFullPath(given);
        return Directory.CreateDirectory(Path.Combine(stateDirectory, "restore-staging")).FullName;
    }

    internal static async Task<RestorePointSummary> SelectPointAsync(CatalogStore store, DomainRow domain, string? pointId, string? at, CancellationToken ct)
    {
        if (pointId is not null)
        {
            var detail = await store.GetPointAsync(pointId, ct)
                ?? throw new CliFailureException(FailureKind.NotFound, $"no restore point '{pointId}' in the catalog (`backupd list --domain {domain.Name}`)");
            if (detail.Point.DomainUuid != domain.Uuid)
                throw new CliFailureException(FailureKind.Usage, $"restore point {pointId} belongs to {detail.Point.DomainName} ({detail.Point.DomainUuid}), not {domain.Name} ({domain.Uuid})");
            return detail.Point;
        }
        if (at is not null)
        {
            var time = CatalogCli.ParseTime(at, "--at");
            return await store.FindPointAtAsync(domain.Uuid, time, ct)
                ?? throw new CliFailureException(FailureKind.NotFound, $"{domain.Name} has no restore point taken at or before {time.UtcDateTime:yyyy-MM-dd HH:mm:ss}Z");
        }
        var all = await store.ListPointsAsync(domain.Uuid, null, ct);
        return all.Count > 0 ? all[0] : throw new CliFailureException(FailureKind.NotFound, $"{domain.Name} has no restore points");
    }

    internal static void Print(RestoreOutcome outcome, DomainRow domain, bool json)
    {
        if (json)
        {
            JsonOutput.Write(new { domain = domain.Name, domainUuid = domain.Uuid, outcome.PointId, outcome.Mode, outcome.Disks, outcome.NewDomainName, outcome.NewDomainUuid, outcome.Changes, outcome.InPlace,
                outcome.DroppedCheckpoints, outcome.CheckpointProblem });
            return;
        }
        foreach (var d in outcome.Disks)
            Console.WriteLine($"{d.Disk}: {d.ImagePath}{(d.Files.Count > 1 ? $" (chain of {d.Files.Count}: {string.Join(", ", d.Files.Skip(1))})" : "")}");
        if (outcome.NewDomainName is not null)
            Console.WriteLine($"defined domain '{outcome.NewDomainName}' ({outcome.NewDomainUuid}), not started");
        // Every change to the saved XML, so the operator sees what the new domain lacks before starting it.
        foreach (var c in outcome.Changes ?? [])
            Console.WriteLine($"{c.Action}: {c.Element}: {c.Reason}");
        foreach (var f in outcome.InPlace ?? [])
            if (f.KeptAside is not null) Console.WriteLine($"kept the replaced image as {f.KeptAside}");
        var bitmaps = outcome.Disks.SelectMany(d => d.RemovedBitmaps).Concat((outcome.InPlace ?? []).SelectMany(f => f.RemovedBitmaps.Select(b => $"{f.Path}: {b}"))).ToList();
        if (bitmaps.Count > 0) Console.WriteLine($"removed {bitmaps.Count} dirty bitmap(s) the backed-up images carried: {string.Join(", ", bitmaps)}");
        if (outcome.DroppedCheckpoints is { Count: > 0 } dropped) Console.WriteLine($"deleted the domain's checkpoint(s) {string.Join(", ", dropped)} (metadata only): the next backup reads every disk in full");
        if (outcome.CheckpointProblem is { } problem) Console.WriteLine($"warning: {problem}");
        AnsiConsole.MarkupLine($"restored [bold]{Markup.Escape(domain.Name)}[/] point {Markup.Escape(outcome.PointId)} ({outcome.Mode}), digests verified");
    }
}
