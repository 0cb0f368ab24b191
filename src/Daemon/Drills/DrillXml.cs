using System.Xml.Linq;
using Backupd.Daemon.Restore;
using Backupd.Storage.Catalog;

namespace Backupd.Daemon.Drills;

/// <summary>
/// The definition of a drill's throwaway domain: the point's saved XML made a new domain (<see cref="NewDomainXml"/>: new
/// name, UUID and MACs, disks on the drill's overlays, sanitised unless trusted), then isolated from everything the
/// original touches: no network interface at all, no host device, no display, character devices on files written into
/// the drill directory (the serial console becomes console.log there), virtio channel sockets made by libvirt.
/// Pure: string in, string out.
/// </summary>
public static class DrillXml
{
    private static readonly string[] Removed = ["interface", "hostdev", "graphics", "redirdev", "smartcard", "filesystem"];

    public static NewDomainDefinition Build(string savedXml, string name, IReadOnlyDictionary<string, RestoredDisk> overlays, string directory, string? hostEmulator, bool trusted)
    {
        var made = NewDomainXml.Rewrite(savedXml, name, overlays, new SavedXmlPolicy(directory, hostEmulator, trusted));
        var root = XElement.Parse(made.Xml);
        var changes = made.Changes.ToList();
        var devices = root.Element("devices");
        foreach (var device in devices?.Elements().Where(e => Removed.Contains(e.Name.LocalName)).ToList() ?? [])
        {
            changes.Add(new XmlChange($"<{device.Name.LocalName} type='{device.Attribute("type")?.Value}'>", XmlChange.Dropped,
                device.Name.LocalName == "interface" ? "a drill runs without network, so it cannot clash with the original" : "a drill uses nothing of the host's"));
            device.Remove();
        }
        var console = Path.Combine(directory, "console.log");
        foreach (var chr in devices?.Elements().Where(e => e.Name.LocalName is "serial" or "console" or "parallel" or "channel").ToList() ?? [])
        {
            var type = chr.Attribute("type")?.Value;
            if (chr.Name.LocalName == "channel" && type == "unix")
            {
                foreach (var source in chr.Elements("source")) source.Attribute("path")?.Remove(); // libvirt makes the socket
                continue;
            }
            if (type is "file" or "pty" or "unix" or "pipe" or "dev" or "tcp" or "udp")
            {
                // The first serial port (and a console on it) writes the drill's console log; the others are dropped.
                if (chr.Name.LocalName is "serial" or "console" && type is "file")
                {
                    chr.Element("source")?.SetAttributeValue("path", console);
                    chr.Element("log")?.Remove();
                    continue;
                }
                if (type == "pty") continue; // a pseudo-terminal of its own, nothing shared
                changes.Add(new XmlChange($"<{chr.Name.LocalName} type='{type}'>", XmlChange.Dropped, "a drill's character devices are its own files"));
                chr.Remove();
            }
        }
        // Who runs it, for `recover` when the journal is lost: a live owner's domain is never removed.
        root.SetElementValue("description", $"{OwnerTag} pid={ProcessIdentity.Current.Pid} start={ProcessIdentity.Current.StartToken}");
        root.SetElementValue("on_reboot", "destroy");
        root.SetElementValue("on_crash", "destroy");
        return new NewDomainDefinition(root.ToString(SaveOptions.DisableFormatting), made.Uuid, changes);
    }

    /// <summary>
    /// A restored domain's own character devices (instant restore with a trusted XML): virtio channel sockets made by
    /// libvirt, a serial console on a file written to <paramref name="directory"/>/console.log, not the original's.
    /// </summary>
    public static string OwnCharacterFiles(string xml, string directory)
    {
        var root = XElement.Parse(xml);
        foreach (var chr in root.Element("devices")?.Elements().Where(e => e.Name.LocalName is "serial" or "console" or "channel").ToList() ?? [])
        {
            var type = chr.Attribute("type")?.Value;
            if (chr.Name.LocalName == "channel" && type == "unix") foreach (var source in chr.Elements("source")) source.Attribute("path")?.Remove();
            else if (type == "file") chr.Element("source")?.SetAttributeValue("path", Path.Combine(directory, "console.log"));
        }
        return root.ToString(SaveOptions.DisableFormatting);
    }

    public const string OwnerTag = "backupd restore drill;";

    /// <summary>The process that started the drill domain of <paramref name="xml"/>, from its description; null when it has none.</summary>
    public static (int Pid, string Start)? Owner(string xml)
    {
        var text = XElement.Parse(xml).Element("description")?.Value ?? "";
        var m = System.Text.RegularExpressions.Regex.Match(text, @"pid=(\d+) start=(\S+)");
        return m.Success ? (int.Parse(m.Groups[1].Value, System.Globalization.CultureInfo.InvariantCulture), m.Groups[2].Value) : null;
    }

    /// <summary>True when the XML has a virtio channel for the QEMU guest agent.</summary>
    public static bool HasAgentChannel(string xml) =>
        XElement.Parse(xml).Element("devices")?.Elements("channel")
            .Any(c => c.Element("target")?.Attribute("name")?.Value == "org.qemu.guest_agent.0") == true;
}
