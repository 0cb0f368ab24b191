using System.Xml.Linq;
using Backupd.Daemon.Libvirt;

namespace Backupd.Daemon.Workflow;

/// <summary>
/// The domainsnapshot XML for the temporary overlay. Every disk of the domain is listed: an unlisted
/// disk would get an overlay named by libvirt (and an unlisted network disk fails the call).
/// </summary>
public static class SnapshotXml
{
    public static string Build(string runId, IReadOnlyList<DomainDisk> allDisks, IReadOnlyDictionary<string, string> overlayByTarget)
    {
        var disks = new XElement("disks");
        foreach (var disk in allDisks)
        {
            if (!overlayByTarget.TryGetValue(disk.Target, out var overlay))
            {
                disks.Add(new XElement("disk", new XAttribute("name", disk.Target), new XAttribute("snapshot", "no")));
                continue;
            }
            var source = new XElement("source", new XAttribute("file", overlay));
            // Without this the overlay is created in plaintext and guest writes land in it unencrypted.
            if (disk.EncryptionXml is not null) source.Add(EncryptionForOverlay(disk));
            disks.Add(new XElement("disk",
                new XAttribute("name", disk.Target),
                new XAttribute("snapshot", "external"),
                new XAttribute("type", "file"),
                new XElement("driver", new XAttribute("type", "qcow2")),
                source));
        }
        return new XElement("domainsnapshot",
            new XElement("description", $"backupd run {runId}: temporary overlay, merged back after the copy"),
            disks).ToString(SaveOptions.DisableFormatting);
    }

    /// <summary>The disk's own LUKS secret, reused for its overlay; refuses anything we cannot reproduce.</summary>
    private static XElement EncryptionForOverlay(DomainDisk disk)
    {
        var encryption = XElement.Parse(disk.EncryptionXml!);
        var format = (string?)encryption.Attribute("format");
        var secret = encryption.Element("secret");
        if (format != "luks")
            throw new BackupRefusedException(RefusalKind.BadRequest,
                $"disk '{disk.Target}' uses encryption format '{format}': only LUKS disks get an encrypted overlay; refusing rather than creating a plaintext overlay");
        if (secret is null || (secret.Attribute("uuid") is null && secret.Attribute("usage") is null))
            throw new BackupRefusedException(RefusalKind.BadRequest,
                $"disk '{disk.Target}' is LUKS-encrypted but its definition names no secret (uuid or usage): cannot create an encrypted overlay, refusing rather than creating a plaintext one");
        return encryption;
    }
}
