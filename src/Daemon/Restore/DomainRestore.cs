using Backupd.Daemon.Cli;
using Backupd.Daemon.Libvirt;

namespace Backupd.Daemon.Restore;

/// <summary>What a restore produced, for the command's output.</summary>
public sealed record RestoreOutcome(
    string PointId,
    string Mode,
    IReadOnlyList<RestoredDiskResult> Disks,
    string? NewDomainName = null,
    Guid? NewDomainUuid = null,
    IReadOnlyList<XmlChange>? Changes = null,
    IReadOnlyList<InPlaceFile>? InPlace = null)
{
    /// <summary>In-place: the domain's checkpoints deleted (metadata only) because the restored images no longer carry their bitmaps.</summary>
    public IReadOnlyList<string>? DroppedCheckpoints { get; init; }
    /// <summary>In-place: why some checkpoint could not be dropped (harmless: its bitmap is gone, so no backup trusts it; the next one deletes it).</summary>
    public string? CheckpointProblem { get; init; }
}

/// <summary>
/// The three ways to restore a domain's restore point, with the checks that keep each one from
/// touching what it must not: --to writes only new files in one directory; --as-domain also defines
/// (never starts) a new domain and refuses an existing name; --in-place only for a domain that is
/// shut off, whose disks still point where the point was taken from.
/// </summary>
public sealed class DomainRestore(IRestoreSource source)
{
    public async Task<RestoreOutcome> ToDirectoryAsync(string pointId, IReadOnlyList<PlannedDisk> plan, string directory, bool flatten, IProgress<long>? progress, CancellationToken ct)
    {
        var target = RestoreDirectory.Prepare(directory, DiskRestorer.OutputNames(plan, flatten), create: true);
        var disks = await new DiskRestorer(source).RestoreToDirectoryAsync(pointId, plan, target, flatten, progress, ct);
        return new RestoreOutcome(pointId, flatten ? "to-flatten" : "to", disks);
    }

    /// <summary>
    /// Restores into <paramref name="imagesDirectory"/> (checked like --to: may exist, no file in it is
    /// overwritten, no symlink in its path), or by default into a new <c>&lt;directory of the first disk's
    /// image&gt;/&lt;newName&gt;/</c>, and defines the new domain (not started). The saved XML is sanitised
    /// (<see cref="SavedXmlSanitiser"/>) unless <paramref name="trustSavedXml"/>; the host's emulator is looked
    /// up first, so a host that cannot run the domain is refused before anything is written.
    /// </summary>
    public async Task<RestoreOutcome> AsDomainAsync(IHypervisor hypervisor, string pointId, string? savedXml, IReadOnlyList<PlannedDisk> plan, string newName, bool flatten,
        string? imagesDirectory, bool trustSavedXml, IProgress<long>? progress, CancellationToken ct)
    {
        NewDomainXml.ValidateName(newName);
        if (savedXml is null)
            throw new RestoreException(FailureKind.NotFound, $"restore point {pointId} has no saved domain XML; restore its files with --to instead");
        if (hypervisor.FindDomain(newName) is { } existing)
            throw new RestoreException(FailureKind.Usage, $"a domain named '{newName}' already exists ({existing.Uuid}); choose another name");
        string directory;
        if (imagesDirectory is not null)
        {
            directory = Path.GetFullPath(imagesDirectory);
        }
        else
        {
            var parent = Path.GetDirectoryName(plan[0].Top.SourcePath) ?? throw new RestoreException(FailureKind.Failed, $"cannot tell where {plan[0].Top.SourcePath} lived");
            if (parent == "/dev" || parent.StartsWith("/dev/", StringComparison.Ordinal))
                throw new RestoreException(FailureKind.Usage, $"{plan[0].Top.SourcePath} is a block device: choose where the new domain's image files go with --images-dir");
            directory = Path.Combine(parent, newName);
            if (Path.Exists(directory))
                throw new RestoreException(FailureKind.Usage, $"{directory} already exists; refusing to write the new domain's images into it (choose one with --images-dir)");
        }
        var emulator = trustSavedXml ? null : HostEmulator(hypervisor, savedXml);
        var createdDirectory = !Directory.Exists(directory);
        var restored = await ToDirectoryAsync(pointId, plan, directory, flatten, progress, ct);
        var definition = NewDomainXml.Rewrite(savedXml, newName, restored.Disks.ToDictionary(d => d.Disk, d => new RestoredDisk(d.ImagePath, d.Format)),
            new SavedXmlPolicy(directory, emulator, trustSavedXml));
        try
        {
            hypervisor.DefineXml(definition.Xml);
        }
        catch (LibvirtException)
        {
            // The images are of no use without the domain: leave nothing behind, but only what this restore created
            // (an --images-dir that existed may hold other files).
            foreach (var file in restored.Disks.SelectMany(d => d.Files)) File.Delete(file);
            if (createdDirectory && !Directory.EnumerateFileSystemEntries(directory).Any()) Directory.Delete(directory);
            throw;
        }
        return restored with { Mode = "as-domain", NewDomainName = newName, NewDomainUuid = definition.Uuid, Changes = definition.Changes };
    }

    /// <summary>The host's emulator for the saved domain's type, arch and machine; a machine type the host lacks falls back to the arch's default.</summary>
    internal static string HostEmulator(IHypervisor hypervisor, string savedXml)
    {
        var (type, arch, machine) = NewDomainXml.EmulatorQuery(savedXml);
        try
        {
            return hypervisor.GetHostEmulator(type, arch, machine);
        }
        catch (LibvirtException) when (machine is not null)
        {
            try { return hypervisor.GetHostEmulator(type, arch, null); }
            catch (LibvirtException e) { throw NoEmulator(type, arch, machine, e); }
        }
        catch (LibvirtException e)
        {
            throw NoEmulator(type, arch, machine, e);
        }
    }

    private static RestoreException NoEmulator(string? type, string? arch, string? machine, LibvirtException e) =>
        new(FailureKind.Failed, $"this host has no emulator for a domain of type {type ?? "(default)"}, arch {arch ?? "(default)"}, machine {machine ?? "(default)"} " +
            $"({e.Message}); the saved <emulator> is never used unless --trust-saved-xml is given");

    /// <param name="deviceStaging">Where the image of a disk on a block device is staged and verified before it is written onto the device.</param>
    public async Task<RestoreOutcome> InPlaceAsync(IHypervisor hypervisor, Guid domainUuid, string pointId, IReadOnlyList<PlannedDisk> plan, bool keepOld,
        IProgress<long>? progress, CancellationToken ct, string? deviceStaging = null)
    {
        var domain = hypervisor.FindDomain(domainUuid.ToString())
            ?? throw new RestoreException(FailureKind.NotFound, $"domain {domainUuid} is not defined on this host; use --as-domain or --to");
        if (domain.IsActive || domain.State != DomainRunState.Shutoff)
            throw new RestoreException(FailureKind.Usage, $"domain '{domain.Name}' is {domain.State.ToString().ToLowerInvariant()}; --in-place only restores a shut-off domain (shut it down first)");
        var current = DomainXml.ParseDisks(hypervisor.GetXml(domain.Uuid, DomainXmlKind.Persistent)).ToDictionary(d => d.Target, StringComparer.Ordinal);
        foreach (var disk in plan)
        {
            if (!current.TryGetValue(disk.Disk, out var now))
                throw new RestoreException(FailureKind.Usage, $"domain '{domain.Name}' has no disk {disk.Disk} any more; restore it with --to");
            if (now.SourcePath != disk.Top.SourcePath)
                throw new RestoreException(FailureKind.Usage,
                    $"disk {disk.Disk} of '{domain.Name}' now uses {now.SourcePath}, the restore point was taken from {disk.Top.SourcePath}; restore it with --to");
        }
        var files = await new InPlaceRestorer(source, deviceStaging).RestoreAsync(pointId, plan, keepOld, progress, ct);
        // The domain did not start meanwhile? If it did, it ran on images being swapped: say so loudly.
        if (hypervisor.FindDomain(domain.Uuid) is { IsActive: true })
            throw new RestoreException(FailureKind.NeedsAttention, $"domain '{domain.Name}' was started while its images were being restored; shut it down and restore again");
        var (dropped, problem) = DropCheckpoints(hypervisor, domain.Uuid);
        return new RestoreOutcome(pointId, "in-place", plan.Select(d => new RestoredDiskResult(d.Disk, d.Top.SourcePath, d.Top.Format, d.Chain.Select(f => f.SourcePath).ToList())).ToList(),
            InPlace: files) { DroppedCheckpoints = dropped, CheckpointProblem = problem };
    }

    /// <summary>
    /// Every checkpoint of the restored domain, ours or not, described writes to the images that were just replaced, and the restored
    /// files lost their bitmaps: delete them all, metadata only (libvirt allows nothing else on a shut-off domain, and the bitmaps are
    /// gone anyway). The next backup then finds no checkpoint and reads in full, with the reason.
    /// </summary>
    internal static (IReadOnlyList<string> Dropped, string? Problem) DropCheckpoints(IHypervisor hypervisor, string uuid)
    {
        var dropped = new List<string>();
        try
        {
            foreach (var c in hypervisor.ListCheckpoints(uuid)) // any order: deleting a parent's metadata only unlinks its children
                if (hypervisor.DeleteCheckpoint(uuid, c.Name, metadataOnly: true)) dropped.Add(c.Name);
            return (dropped, null);
        }
        catch (Exception e) when (e is LibvirtException or NotSupportedException or FormatException)
        {
            return (dropped, $"could not delete every checkpoint of the domain: {(e is LibvirtException l ? l.LibvirtMessage : e.Message)}; " +
                "the restored images carry no bitmaps, so none is trusted, and the next backup deletes them");
        }
    }
}
