using Backupd.Daemon.Libvirt;

namespace Backupd.Daemon.Chains;

/// <summary>Reads a domain's disk chains with their users and warnings (`backupd chain show`, and the first step of every operation).</summary>
public static class ChainInspector
{
    /// <summary>Disks with an image chain: file or block disks (cdroms and network disks have none to manage).</summary>
    public static IReadOnlyList<DomainDisk> ChainDisks(IHypervisor hypervisor, DomainInfo domain) =>
        [.. DomainXml.ParseDisks(hypervisor.GetXml(domain.Uuid, domain.IsActive ? DomainXmlKind.Live : DomainXmlKind.Persistent))
            .Where(d => d.Device == "disk" && d.SourcePath is not null && d.Type is "file" or "block")];

    public static async Task<DomainChains> InspectAsync(IHypervisor hypervisor, DomainInfo domain, ImageUsage usage, int? maxDepth, string? onlyTarget, CancellationToken ct)
    {
        var disks = new List<DiskChain>();
        foreach (var disk in ChainDisks(hypervisor, domain).Where(d => onlyTarget is null || d.Target == onlyTarget))
            disks.Add(await ReadDiskAsync(domain, disk, usage, maxDepth, ct));
        return new DomainChains(domain.Name, domain.Uuid, domain.IsActive, maxDepth, disks);
    }

    public static async Task<DiskChain> ReadDiskAsync(DomainInfo domain, DomainDisk disk, ImageUsage usage, int? maxDepth, CancellationToken ct)
    {
        var layers = (await ImageChainReader.ReadAsync(disk.SourcePath!, ct))
            .Select(l => l with { UsedBy = usage.OthersOf(l.Path, domain.Uuid) }).ToList();
        return new DiskChain(disk.Target, layers) { Warnings = Warn(layers, maxDepth) };
    }

    internal static List<string> Warn(IReadOnlyList<ChainLayer> layers, int? maxDepth)
    {
        var warnings = new List<string>();
        if (maxDepth is { } max && layers.Count > max)
            warnings.Add($"depth {layers.Count} is over the policy's max-depth {max}: `backupd chain shorten --depth {max}`");
        foreach (var l in layers)
        {
            if (l.Missing) warnings.Add($"backing file '{l.Path}' is missing: the guest cannot read this disk");
            if (l.Format == "qcow2" && l.Compat == "0.10") warnings.Add($"'{l.Path}' is qcow2 version 2 (compat 0.10): `qemu-img amend -o compat=1.1` it when the domain is off");
            if (l.BitmapsInUse.Count > 0) warnings.Add($"'{l.Path}' has bitmaps marked in use ({string.Join(", ", l.BitmapsInUse)}): in use by QEMU, or left inconsistent by a crash");
        }
        return warnings;
    }
}
