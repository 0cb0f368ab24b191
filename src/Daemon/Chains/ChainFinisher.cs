using Backupd.Daemon.Libvirt;
using Microsoft.Extensions.Logging;

namespace Backupd.Daemon.Chains;

/// <summary>
/// The last two steps every chain operation shares (and recovery repeats): the persistent definition onto the new
/// active image, then the deletion of files nothing references any more.
/// </summary>
public sealed class ChainFinisher(IHypervisor hypervisor, ILogger logger)
{
    /// <summary>
    /// Rewrites the disk's source in the persistent definition with virDomainDefineXML. Not virDomainUpdateDeviceFlags:
    /// for a disk (not a cdrom/floppy) it cannot change the source path. The backingStore libvirt may have saved is
    /// dropped: libvirt reads the chain from the image headers, which the job has already rewritten.
    /// A definition whose disk names a file outside the old chain was changed by someone else and is left alone.
    /// </summary>
    public void Redefine(ChainJournalEntry entry)
    {
        var domain = hypervisor.FindDomain(entry.DomainUuid);
        if (domain is not { Persistent: true }) return; // transient: nothing saved to update
        var xml = hypervisor.GetXml(entry.DomainUuid, DomainXmlKind.Persistent);
        var disk = DomainXml.ParseDisks(xml).FirstOrDefault(d => d.Target == entry.Target);
        if (disk?.SourcePath is null) return;
        var known = entry.ChainBefore.Append(entry.FinalActive).Select(RealPath.Of).ToHashSet(StringComparer.Ordinal);
        if (!known.Contains(RealPath.Of(disk.SourcePath)))
        {
            ChainsLog.Kept(logger, disk.SourcePath, $"the persistent definition of {entry.DomainName} {entry.Target} names a file outside the chain it had; not redefined");
            return;
        }
        var repoint = new DiskRepoint(disk.SourcePath, new DiskBase(entry.DiskType, entry.FinalActive, entry.FinalFormat));
        var fixedXml = DomainXml.PointDisksAt(xml, new Dictionary<string, DiskRepoint> { [entry.Target] = repoint });
        if (fixedXml is null) return;
        hypervisor.DefineXml(fixedXml);
        ChainsLog.Redefined(logger, entry.DomainName, entry.Target, entry.FinalActive);
    }

    /// <summary>Deletes the entry's files that no definition of any domain names (live or persistent); returns what was deleted and what kept.</summary>
    public async Task<(List<string> Deleted, List<string> Kept)> DeleteUnreferencedAsync(ChainJournalEntry entry, CancellationToken ct)
    {
        var deleted = new List<string>();
        var kept = new List<string>();
        if (entry.DeleteAfter.Count == 0) return (deleted, kept);
        var usage = await ImageUsage.ScanAsync(hypervisor, ct);
        foreach (var path in entry.DeleteAfter.Distinct(StringComparer.Ordinal))
        {
            if (RealPath.Of(path) == RealPath.Of(entry.FinalActive)) continue;
            if (usage.UsersOf(path) is { Count: > 0 } users)
            {
                kept.Add(path);
                ChainsLog.Kept(logger, path, $"still used by {string.Join(", ", users.Select(u => $"{u.Domain} ({u.Definition} {u.Target})").Distinct())}");
                continue;
            }
            if (!File.Exists(path)) continue;
            File.Delete(path);
            deleted.Add(path);
            ChainsLog.Deleted(logger, path);
        }
        return (deleted, kept);
    }
}
