using System.Xml.Linq;

namespace Backupd.Daemon.Restore;

/// <summary>One thing taken out of (or replaced in) a saved domain XML, for the restore's output.</summary>
public sealed record XmlChange(string Element, string Action, string Reason)
{
    public const string Dropped = "dropped", Replaced = "replaced", Emptied = "emptied";

    public override string ToString() => $"{Action} {Element}: {Reason}";
}

/// <summary>
/// What a restore may keep of a saved domain XML. The XML comes from the repository, which whoever can
/// write there may have edited, and the new domain is defined (and later started) by root: by default
/// nothing in it may name a host program, host device or host file outside <see cref="RestoreDirectory"/>.
/// <see cref="Trusted"/> (--trust-saved-xml) keeps the XML as saved apart from what makes it a new domain.
/// </summary>
public sealed record SavedXmlPolicy(string RestoreDirectory, string? HostEmulator, bool Trusted = false)
{
    /// <summary>Only sanitising's own checks: whether <paramref name="path"/> is a file inside the restore directory.</summary>
    public bool IsInside(string path)
    {
        if (!Path.IsPathFullyQualified(path) || path.Contains('\0', StringComparison.Ordinal)) return false;
        var full = Path.GetFullPath(path);
        var root = Path.TrimEndingDirectorySeparator(Path.GetFullPath(RestoreDirectory));
        return full.StartsWith(root + "/", StringComparison.Ordinal);
    }
}

/// <summary>
/// Applies <see cref="SavedXmlPolicy"/> to a saved domain XML, recording every change. The rules, in order
/// (docs/operations.md, "What a restored domain keeps"):
/// 1. elements and attributes in any XML namespace (qemu:commandline, qemu:capabilities, qemu:override, …)
///    are dropped, except inside &lt;metadata&gt;, which libvirt never interprets;
/// 2. every &lt;seclabel&gt; is dropped: it decides the user and confinement QEMU runs under;
/// 3. &lt;os&gt; keeps type, boot, bootmenu, bios, smbios, firmware; kernel, initrd, dtb, loader, nvram, acpi
///    only when their files lie in the restore directory (cmdline only with its kernel); a dropped pflash
///    loader becomes firmware='efi' (libvirt picks the host's UEFI firmware); anything else is dropped;
/// 4. &lt;devices&gt; keeps only the device kinds on <see cref="AllowedDevices"/>; hostdev and filesystem are
///    dropped, as are hostdev/vhostuser/vdpa interfaces, interface script/downscript/backend/rom, and
///    character devices (serial, console, channel, …) on files, sockets, pipes or host devices outside the
///    restore directory (a virtio channel's socket path is cleared: libvirt makes one in its own directory);
/// 5. any remaining attribute or text that is an absolute path outside the restore directory drops its
///    device (or its &lt;os&gt;/top-level element), so kinds not reviewed here cannot reach a host file;
/// 6. &lt;emulator&gt; is replaced by the host's emulator for the domain's type, arch and machine.
/// Disks are the caller's (<see cref="NewDomainXml"/>): only restored files remain as sources.
/// </summary>
internal static class SavedXmlSanitiser
{
    /// <summary>Device kinds reviewed for host paths (with rules 4 and 5 on top). Everything else is dropped.</summary>
    public static readonly string[] AllowedDevices =
    [
        "emulator", "disk", "controller", "interface", "input", "graphics", "video", "sound", "audio", "serial", "parallel",
        "console", "channel", "watchdog", "memballoon", "rng", "tpm", "panic", "iommu", "vsock", "hub", "redirdev",
        "redirfilter", "smartcard", "memory", "crypto", "nvram", "shmem", "lease", "pstore",
    ];

    private static readonly string[] OsKept = ["type", "boot", "bootmenu", "bios", "smbios", "firmware"];
    private static readonly string[] OsFiles = ["kernel", "initrd", "dtb", "loader", "nvram", "acpi"];
    private static readonly string[] CharacterDevices = ["serial", "parallel", "console", "channel", "redirdev", "smartcard"];
    private static readonly string[] HostPathCharacterTypes = ["file", "unix", "pipe", "dev"];

    /// <summary>Device nodes a random number generator may read: they hand out randomness, nothing else.</summary>
    private static readonly string[] RandomSources = ["/dev/urandom", "/dev/random", "/dev/hwrng"];

    /// <summary>Subtrees that hold opaque data, never paths libvirt opens.</summary>
    private static readonly string[] Opaque = ["metadata", "description", "title", "launchSecurity"];

    public static void Apply(XElement root, SavedXmlPolicy policy, List<XmlChange> changes)
    {
        DropForeignNamespaces(root, changes);
        foreach (var label in root.Descendants("seclabel").ToList())
            Drop(label, changes, "a security label decides the user and confinement QEMU runs under; the host's defaults apply");
        if (root.Element("os") is { } os) SanitiseOs(os, policy, changes);
        if (root.Element("devices") is { } devices) SanitiseDevices(devices, policy, changes);
        if (root.Element("devices") is { } d) ReplaceEmulator(root, d, policy, changes);
        DropHostPaths(root, policy, changes);
    }

    /// <summary>The domain's type, arch and machine, to ask the host for its emulator.</summary>
    public static (string? Type, string? Arch, string? Machine) EmulatorQuery(XElement root)
    {
        var osType = root.Element("os")?.Element("type");
        return (Blank(root.Attribute("type")?.Value), Blank(osType?.Attribute("arch")?.Value), Blank(osType?.Attribute("machine")?.Value));
    }

    private static string? Blank(string? value) => string.IsNullOrWhiteSpace(value) ? null : value.Trim();

    private static void DropForeignNamespaces(XElement root, List<XmlChange> changes)
    {
        foreach (var element in root.Descendants().Where(e => e.Name.Namespace != XNamespace.None && !InOpaque(e)).ToList())
        {
            if (!IsAttached(element, root)) continue; // inside one dropped already
            Drop(element, changes, $"an extension in namespace {element.Name.NamespaceName} hands options straight to the hypervisor");
        }
        foreach (var element in root.DescendantsAndSelf().Where(e => !InOpaque(e)))
        {
            foreach (var attribute in element.Attributes().Where(a => a.Name.Namespace != XNamespace.None && !a.IsNamespaceDeclaration).ToList())
            {
                changes.Add(new XmlChange($"{Describe(element)} attribute {attribute.Name}", XmlChange.Dropped, "attributes in an XML namespace are hypervisor extensions"));
                attribute.Remove();
            }
        }
        // Declarations no element uses any more (xmlns:qemu on the root) go too; metadata children carry their own.
        foreach (var declaration in root.Attributes().Where(a => a.IsNamespaceDeclaration && a.Name.Namespace == XNamespace.Xmlns).ToList())
            declaration.Remove();
    }

    private static void SanitiseOs(XElement os, SavedXmlPolicy policy, List<XmlChange> changes)
    {
        var kernelKept = os.Element("kernel") is { } k && FilesInside(k, policy);
        foreach (var child in os.Elements().ToList())
        {
            var name = child.Name.LocalName;
            if (OsKept.Contains(name)) continue;
            if (name == "cmdline")
            {
                if (!kernelKept) Drop(child, changes, "kernel arguments without the saved kernel");
                continue;
            }
            if (!OsFiles.Contains(name))
            {
                Drop(child, changes, "not on the list of <os> elements a restored domain keeps");
                continue;
            }
            if (name == "nvram" || FilesInside(child, policy)) continue; // nvram: always the caller's (never shared)
            if (name == "loader" && child.Attribute("type")?.Value == "pflash")
            {
                Replace(child, changes, "a firmware file outside the restore directory; firmware='efi' lets libvirt pick the host's UEFI firmware");
                os.SetAttributeValue("firmware", "efi");
                child.Remove();
                continue;
            }
            Drop(child, changes, "a boot file outside the restore directory (it would be loaded into the new domain)");
        }
    }

    private static void SanitiseDevices(XElement devices, SavedXmlPolicy policy, List<XmlChange> changes)
    {
        foreach (var device in devices.Elements().ToList())
        {
            var kind = device.Name.LocalName;
            var type = device.Attribute("type")?.Value;
            if (kind == "hostdev") { Drop(device, changes, "passes a host device (PCI, USB, SCSI, mediated) to the guest"); continue; }
            if (kind == "filesystem") { Drop(device, changes, "shares a host directory with the guest"); continue; }
            if (!AllowedDevices.Contains(kind)) { Drop(device, changes, "not on the list of device kinds a restored domain keeps"); continue; }
            if (kind == "interface") SanitiseInterface(device, type, policy, changes);
            else if (CharacterDevices.Contains(kind)) SanitiseCharacterDevice(device, kind, type, policy, changes);
        }
    }

    private static void SanitiseInterface(XElement device, string? type, SavedXmlPolicy policy, List<XmlChange> changes)
    {
        if (type is "hostdev" or "vhostuser" or "vdpa")
        {
            Drop(device, changes, type == "hostdev" ? "passes a host network device to the guest" : "connects the guest to a host socket or device");
            return;
        }
        foreach (var script in device.Elements().Where(e => e.Name.LocalName is "script" or "downscript").ToList())
            Drop(script, changes, "runs a host program as root when the interface comes up or goes down");
        foreach (var backend in device.Elements("backend").Where(b => b.Attribute("tap") is not null || b.Attribute("vhost") is not null).ToList())
            Drop(backend, changes, "names host device nodes for the interface; libvirt opens its own");
        foreach (var rom in device.Elements("rom").Where(r => r.Attribute("file") is { } f && !policy.IsInside(f.Value)).ToList())
            Drop(rom, changes, "an option ROM file outside the restore directory");
    }

    private static void SanitiseCharacterDevice(XElement device, string kind, string? type, SavedXmlPolicy policy, List<XmlChange> changes)
    {
        foreach (var log in device.Elements("log").Where(l => l.Attribute("file") is { } f && !policy.IsInside(f.Value)).ToList())
            Drop(log, changes, "a log file outside the restore directory (QEMU would write it)");
        if (type is null || !HostPathCharacterTypes.Contains(type)) return;
        var sources = device.Elements("source").ToList();
        var paths = sources.Select(s => s.Attribute("path")?.Value).OfType<string>().ToList();
        if (paths.All(policy.IsInside) && (type != "dev" || paths.Count == 0)) return;
        var virtioUnixChannel = kind == "channel" && type == "unix" && device.Element("target")?.Attribute("type")?.Value == "virtio";
        if (virtioUnixChannel)
        {
            Replace(device, changes, "a socket path outside the restore directory; libvirt makes one in its own channel directory");
            foreach (var source in sources) source.Attribute("path")?.Remove();
            return;
        }
        Drop(device, changes, type switch
        {
            "dev" => "connects the guest to a host device",
            "unix" => "connects the guest to a host socket outside the restore directory",
            _ => $"QEMU would open a host {type} outside the restore directory",
        });
    }

    /// <summary>Rule 5: whatever the rules above did not know about may still not name a host file.</summary>
    private static void DropHostPaths(XElement root, SavedXmlPolicy policy, List<XmlChange> changes)
    {
        foreach (var element in root.Descendants().Where(e => !InOpaque(e)).ToList())
        {
            if (!IsAttached(element, root)) continue; // inside one dropped already
            var hostPath = HostPath(element, policy);
            if (hostPath is null) continue;
            var unit = Unit(element, root);
            Drop(unit, changes, $"names {hostPath}, a host path outside the restore directory");
        }
    }

    private static string? HostPath(XElement element, SavedXmlPolicy policy)
    {
        if (element.Name.LocalName == "partition" && element.Parent?.Name.LocalName == "resource") return null; // a cgroup, not a file
        if (element.Name.LocalName == "emulator" && policy.HostEmulator is not null && element.Value == policy.HostEmulator) return null; // rule 6 put it there
        var values = element.Attributes().Where(a => !a.IsNamespaceDeclaration).Select(a => a.Value).ToList();
        if (!element.HasElements) values.Add(element.Value.Trim());
        var isRandomBackend = element.Name.LocalName == "backend" && element.Parent?.Name.LocalName == "rng";
        return values.FirstOrDefault(v => v.StartsWith('/') && !policy.IsInside(v) && !(isRandomBackend && RandomSources.Contains(v)));
    }

    /// <summary>What rule 5 drops: a device whole (a disk only the offending part), an &lt;os&gt; child, or a top-level element.</summary>
    private static XElement Unit(XElement element, XElement root)
    {
        var chain = element.AncestorsAndSelf().TakeWhile(e => e != root).Reverse().ToList(); // [top-level, …, element]
        if (chain.Count >= 2 && chain[0].Name.LocalName is "devices" or "os")
        {
            if (chain[1].Name.LocalName == "disk" && chain.Count >= 3) return chain[2];
            return chain[1];
        }
        return chain[0];
    }

    private static void ReplaceEmulator(XElement root, XElement devices, SavedXmlPolicy policy, List<XmlChange> changes)
    {
        if (policy.HostEmulator is null) return;
        var saved = devices.Elements("emulator").ToList();
        var (type, arch, machine) = EmulatorQuery(root);
        foreach (var e in saved.Where(e => e.Value.Trim() != policy.HostEmulator))
            Replace(e, changes, $"the host's emulator for type {type ?? "(default)"}, arch {arch ?? "(default)"}, machine {machine ?? "(default)"} is {policy.HostEmulator}");
        foreach (var e in saved) e.Remove();
        devices.AddFirst(new XElement("emulator", policy.HostEmulator));
    }

    /// <summary>True when every path in the element lies in the restore directory (an element naming none loads nothing).</summary>
    private static bool FilesInside(XElement element, SavedXmlPolicy policy) =>
        PathsIn(element).All(policy.IsInside);

    private static IEnumerable<string> PathsIn(XElement element) =>
        element.DescendantsAndSelf().SelectMany(e => e.Attributes().Where(a => !a.IsNamespaceDeclaration).Select(a => a.Value).Concat(e.HasElements ? [] : [e.Value.Trim()]))
            .Where(v => v.StartsWith('/'));

    private static bool InOpaque(XElement element) => element.AncestorsAndSelf().Any(e => e.Name.Namespace == XNamespace.None && Opaque.Contains(e.Name.LocalName)
        && e.Parent is { } p && p.Parent is null);

    private static bool IsAttached(XElement element, XElement root) => element.Ancestors().Any(a => a == root);

    private static void Drop(XElement element, List<XmlChange> changes, string reason)
    {
        changes.Add(new XmlChange(Describe(element), XmlChange.Dropped, reason));
        element.Remove();
    }

    private static void Replace(XElement element, List<XmlChange> changes, string reason) =>
        changes.Add(new XmlChange(Describe(element), XmlChange.Replaced, reason));

    /// <summary>The element as an operator would recognise it: its start tag (and text, or else the first path in it), shortened.</summary>
    public static string Describe(XElement element)
    {
        var name = element.Name.Namespace == XNamespace.None ? element.Name.LocalName : $"{{{element.Name.NamespaceName}}}{element.Name.LocalName}";
        var attributes = string.Concat(element.Attributes().Where(a => !a.IsNamespaceDeclaration).Select(a => $" {a.Name.LocalName}='{a.Value}'"));
        if (!element.HasElements && element.Value.Trim() is { Length: > 0 } text) return Shorten($"<{name}{attributes}>{text}</{name}>");
        var path = element.HasElements ? element.Elements().SelectMany(PathsIn).FirstOrDefault() : null;
        return Shorten(path is null ? $"<{name}{attributes}>" : $"<{name}{attributes}> ({path})");
    }

    private static string Shorten(string text) => text.Length <= 200 ? text : text[..197] + "...";
}
