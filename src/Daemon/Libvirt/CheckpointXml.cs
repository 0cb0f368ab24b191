using System.Xml.Linq;

namespace Backupd.Daemon.Libvirt;

/// <summary>One libvirt checkpoint of a domain: its name, parent and the disks it tracks with a persistent bitmap (named like the checkpoint).</summary>
public sealed record CheckpointInfo(string Name, string? Parent, IReadOnlyList<string> BitmapDisks);

/// <summary>The &lt;domaincheckpoint&gt; documents we write and read.</summary>
public static class CheckpointXml
{
    /// <summary>
    /// Every disk of the domain must be listed: a checkpoint naming only checkpoint='no' disks tracks nothing at all,
    /// and an unlisted disk gets libvirt's default (a bitmap), which fails for raw and qcow2 v2 images.
    /// </summary>
    public static string Build(string name, IEnumerable<(string Target, bool Bitmap)> disks) =>
        new XElement("domaincheckpoint",
            new XElement("name", name),
            new XElement("disks", disks.Select(d => new XElement("disk",
                new XAttribute("name", d.Target),
                new XAttribute("checkpoint", d.Bitmap ? "bitmap" : "no"))))).ToString(SaveOptions.DisableFormatting);

    public static CheckpointInfo Parse(string xml)
    {
        var root = XElement.Parse(xml);
        var name = (string?)root.Element("name") ?? throw new FormatException("checkpoint XML without <name>");
        var parent = (string?)root.Element("parent")?.Element("name");
        var disks = root.Element("disks")?.Elements("disk")
            .Where(d => (string?)d.Attribute("checkpoint") == "bitmap")
            .Select(d => (string)d.Attribute("name")!).ToList() ?? [];
        return new CheckpointInfo(name, parent, disks);
    }
}
