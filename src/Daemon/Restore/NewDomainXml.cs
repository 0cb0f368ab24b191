using System.Security.Cryptography;
using System.Xml;
using System.Xml.Linq;
using Backupd.Daemon.Cli;

namespace Backupd.Daemon.Restore;

/// <summary>A restored disk image the new domain should use.</summary>
public sealed record RestoredDisk(string Path, string Format);

/// <summary>The definition of a domain restored under a new name, and everything that was left out of it or replaced.</summary>
public sealed record NewDomainDefinition(string Xml, Guid Uuid, IReadOnlyList<XmlChange> Changes);

/// <summary>
/// Turns the domain XML saved with a restore point (INACTIVE|SECURE) into the definition of a new,
/// independent domain: new name and UUID, new MAC addresses, each restored disk pointing at its
/// restored file. Nothing of the original may be shared with it, so writable disks that were not
/// restored and the per-VM NVRAM file are dropped (and said so). Unless the policy trusts the saved
/// XML, it is also sanitised (<see cref="SavedXmlSanitiser"/>): the only disk sources left are the
/// restored files, read-only media are emptied. Pure: string in, string out.
/// </summary>
public static class NewDomainXml
{
    /// <summary>The domain type, arch and machine of a saved XML, to look up the host's emulator before anything is restored.</summary>
    public static (string? Type, string? Arch, string? Machine) EmulatorQuery(string savedXml) => SavedXmlSanitiser.EmulatorQuery(ParseRoot(savedXml));

    public static NewDomainDefinition Rewrite(string savedXml, string newName, IReadOnlyDictionary<string, RestoredDisk> disks, SavedXmlPolicy policy, Func<byte[]>? random = null)
    {
        ValidateName(newName);
        random ??= () => RandomNumberGenerator.GetBytes(3);
        var root = ParseRoot(savedXml);
        var changes = new List<XmlChange>();

        SetChild(root, "name", newName);
        var uuid = Guid.NewGuid();
        SetChild(root, "uuid", uuid.ToString("D"));
        // A generated name and ids that belong to the old domain's running instance.
        root.Attribute("id")?.Remove();

        var devices = root.Element("devices");
        foreach (var mac in devices?.Elements("interface").Select(i => i.Element("mac")).OfType<XElement>().ToList() ?? [])
        {
            var b = random();
            mac.SetAttributeValue("address", $"52:54:00:{b[0]:x2}:{b[1]:x2}:{b[2]:x2}");
        }

        foreach (var disk in devices?.Elements("disk").ToList() ?? [])
        {
            var target = disk.Element("target")?.Attribute("dev")?.Value ?? "";
            if (disks.TryGetValue(target, out var restored))
            {
                disk.SetAttributeValue("type", "file");
                disk.Element("source")?.Remove();
                disk.Element("backingStore")?.Remove();
                var driver = disk.Element("driver");
                if (driver is null) { driver = new XElement("driver", new XAttribute("name", "qemu")); disk.AddFirst(driver); }
                driver.SetAttributeValue("type", restored.Format);
                driver.AddAfterSelf(new XElement("source", new XAttribute("file", restored.Path)));
                continue;
            }
            var device = disk.Attribute("device")?.Value ?? "disk";
            var readOnly = disk.Element("readonly") is not null;
            var described = $"disk {target} ({SavedXmlSanitiser.Describe(disk)})";
            if (device is "cdrom" or "floppy")
            {
                // The drive stays (boot order, bus layout); its medium is a host file unless trusted.
                if (policy.Trusted || disk.Element("source") is null) continue;
                disk.Element("source")!.Remove();
                disk.Element("backingStore")?.Remove();
                changes.Add(new XmlChange(described, XmlChange.Emptied, "removable medium on a host file, not restored; insert it again with `virsh change-media` if wanted"));
                continue;
            }
            if (readOnly && policy.Trusted) continue; // read-only media can be shared
            disk.Remove();
            changes.Add(new XmlChange(described, XmlChange.Dropped, readOnly
                ? "a read-only disk that was not restored would give the guest a host file or device"
                : "not restored; it would share the original's image"));
        }

        if (root.Element("os")?.Element("nvram") is { } nvram)
        {
            changes.Add(new XmlChange(SavedXmlSanitiser.Describe(nvram), XmlChange.Dropped, "the UEFI variable store is the original's: libvirt creates a fresh one from the firmware template"));
            nvram.Remove();
        }
        if (!policy.Trusted) SavedXmlSanitiser.Apply(root, policy, changes);
        return new NewDomainDefinition(root.ToString(SaveOptions.DisableFormatting), uuid, changes);
    }

    private static XElement ParseRoot(string savedXml)
    {
        XDocument doc;
        try
        {
            // No DTD: an edited XML must not make the parser fetch or expand entities.
            using var reader = XmlReader.Create(new StringReader(savedXml), new XmlReaderSettings { DtdProcessing = DtdProcessing.Prohibit, XmlResolver = null });
            doc = XDocument.Load(reader, LoadOptions.PreserveWhitespace);
        }
        catch (XmlException e)
        {
            throw new RestoreException(FailureKind.Failed, $"the saved domain XML does not parse ({e.Message})");
        }
        return doc.Root is { Name.LocalName: "domain" } r ? r : throw new RestoreException(FailureKind.Failed, "the saved domain XML has no <domain> root");
    }

    /// <summary>libvirt names: non-empty, no '/', no control characters.</summary>
    public static void ValidateName(string name)
    {
        if (string.IsNullOrWhiteSpace(name) || name is "." or ".." || name.Contains('/', StringComparison.Ordinal) || name.Any(char.IsControl) || name.Length > 200)
            throw new RestoreException(FailureKind.Usage, $"--as-domain '{name}': a domain name must be non-empty, at most 200 characters, without '/' or control characters, not '.' or '..'");
    }

    private static void SetChild(XElement parent, string name, string value)
    {
        var element = parent.Element(name);
        if (element is null) parent.AddFirst(new XElement(name, value));
        else element.Value = value;
    }
}
