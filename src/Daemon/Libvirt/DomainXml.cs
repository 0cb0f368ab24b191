using System.Xml.Linq;

namespace Backupd.Daemon.Libvirt;

/// <summary>Pure reading and rewriting of libvirt domain XML.</summary>
public static class DomainXml
{
    public static IReadOnlyList<DomainDisk> ParseDisks(string xml)
    {
        var doc = Load(xml);
        return doc.Root!.Element("devices")?.Elements("disk").Select(ParseDisk).ToList() ?? [];
    }

    private static DomainDisk ParseDisk(XElement disk)
    {
        var type = (string?)disk.Attribute("type") ?? "file";
        var source = disk.Element("source");
        var encryption = source?.Element("encryption") ?? disk.Element("encryption");
        var mirror = disk.Element("mirror");
        return new DomainDisk(
            Target: (string?)disk.Element("target")?.Attribute("dev") ?? "",
            Device: (string?)disk.Attribute("device") ?? "disk",
            Type: type,
            SourcePath: SourcePath(source),
            Format: (string?)disk.Element("driver")?.Attribute("type"),
            ReadOnly: disk.Element("readonly") is not null,
            Shareable: disk.Element("shareable") is not null,
            NetworkProtocol: (string?)source?.Attribute("protocol"),
            EncryptionXml: encryption?.ToString(SaveOptions.DisableFormatting),
            BackingChain: ParseChain(disk.Element("backingStore")),
            MirrorJob: (string?)mirror?.Attribute("job"),
            MirrorReady: (string?)mirror?.Attribute("ready") == "yes");
    }

    private static string? SourcePath(XElement? source) =>
        (string?)source?.Attribute("file") ?? (string?)source?.Attribute("dev");

    /// <summary>Follows nested backingStore elements; the chain ends at an empty &lt;backingStore/&gt;.</summary>
    private static List<BackingImage> ParseChain(XElement? store)
    {
        var chain = new List<BackingImage>();
        while (store is not null && store.HasElements)
        {
            chain.Add(new BackingImage(
                (string?)store.Attribute("type") ?? "file",
                SourcePath(store.Element("source")),
                (string?)store.Element("format")?.Attribute("type")));
            store = store.Element("backingStore");
        }
        return chain;
    }

    /// <summary>True when the guest agent channel (org.qemu.guest_agent.0) reports state='connected'.</summary>
    public static bool AgentConnected(string xml) =>
        Load(xml).Root!.Element("devices")?.Elements("channel")
            .Select(c => c.Element("target"))
            .Any(t => (string?)t?.Attribute("name") == "org.qemu.guest_agent.0" && (string?)t?.Attribute("state") == "connected") ?? false;

    /// <summary>True when the definition has a guest agent channel at all.</summary>
    public static bool HasAgentChannel(string xml) =>
        Load(xml).Root!.Element("devices")?.Elements("channel")
            .Any(c => (string?)c.Element("target")?.Attribute("name") == "org.qemu.guest_agent.0") ?? false;

    /// <summary>
    /// Points disks back at their base image in a persistent definition: for each target in
    /// <paramref name="repoints"/> whose source is still the named overlay, restores the disk type,
    /// source attribute and driver format, and drops the backingStore libvirt wrote for the overlay.
    /// A disk that points elsewhere is left alone (the admin may have changed it). Returns null when
    /// nothing needed changing.
    /// </summary>
    public static string? PointDisksAt(string inactiveXml, IReadOnlyDictionary<string, DiskRepoint> repoints)
    {
        var doc = Load(inactiveXml);
        var changed = false;
        foreach (var disk in doc.Root!.Element("devices")?.Elements("disk") ?? [])
        {
            var target = (string?)disk.Element("target")?.Attribute("dev");
            if (target is null || !repoints.TryGetValue(target, out var repoint)) continue;
            var source = disk.Element("source");
            if (source is null || SourcePath(source) != repoint.OverlayPath) continue;
            var wanted = repoint.Base;
            disk.SetAttributeValue("type", wanted.Type);
            source.SetAttributeValue("file", null);
            source.SetAttributeValue("dev", null);
            source.SetAttributeValue(wanted.Type == "block" ? "dev" : "file", wanted.Path);
            disk.Element("driver")?.SetAttributeValue("type", wanted.Format);
            disk.Element("backingStore")?.Remove();
            changed = true;
        }
        return changed ? doc.ToString(SaveOptions.DisableFormatting) : null;
    }

    private static XDocument Load(string xml)
    {
        try { return XDocument.Parse(xml); }
        catch (System.Xml.XmlException e) { throw new FormatException($"libvirt returned XML that does not parse: {e.Message}", e); }
    }
}

/// <summary>What a disk pointed at before the snapshot: disk@type (file|block), the image path and its format.</summary>
public sealed record DiskBase(string Type, string Path, string Format);

/// <summary>A disk to move from one of our overlays back to its base.</summary>
public sealed record DiskRepoint(string OverlayPath, DiskBase Base);
