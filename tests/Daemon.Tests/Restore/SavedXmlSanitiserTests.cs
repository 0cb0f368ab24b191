using System.Xml.Linq;
using Backupd.Daemon.Restore;

namespace Backupd.Daemon.Tests.Restore;

/// <summary>
/// Hostile saved domain XML, one element kind per case: whatever names a host program, device or file
/// outside the restore directory must be gone from the new domain's XML and listed as a change.
/// </summary>
public sealed class SavedXmlSanitiserTests
{
    private const string RestoreDir = "/restore/web1-copy";
    private const string HostEmulator = "/usr/bin/qemu-system-x86_64";
    private static readonly SavedXmlPolicy Policy = new(RestoreDir, HostEmulator);
    private static readonly Dictionary<string, RestoredDisk> Disks = new() { ["vda"] = new($"{RestoreDir}/vda.qcow2", "qcow2") };

    private static string Saved(string devices = "", string os = "", string top = "", string rootAttributes = "") => $"""
        <domain type='kvm'{rootAttributes}>
          <name>web1</name>
          <uuid>6f0e2a55-6a3f-4d1b-9a57-0c1b2b3c4d5e</uuid>
          <memory unit='KiB'>65536</memory>
          <os><type arch='x86_64' machine='pc-q35-7.2'>hvm</type>{os}</os>
          {top}
          <devices>
            <emulator>/tmp/x/evil-emulator</emulator>
            <disk type='file' device='disk'>
              <driver name='qemu' type='qcow2'/>
              <source file='/img/web1.qcow2'/>
              <target dev='vda' bus='virtio'/>
            </disk>
            <interface type='network'><mac address='52:54:00:aa:bb:cc'/><source network='default'/><model type='virtio'/></interface>
            <serial type='pty'><target port='0'/></serial>
            <console type='pty'><target type='serial' port='0'/></console>
            {devices}
          </devices>
        </domain>
        """;

    private static NewDomainDefinition Rewrite(string xml, SavedXmlPolicy? policy = null) =>
        NewDomainXml.Rewrite(xml, "web1-copy", Disks, policy ?? Policy, () => [1, 2, 3]);

    public static TheoryData<string, string, string, string> HostileDevices => new()
    {
        // name of the case, device XML, a string that must not survive, how the change names what it dropped
        { "hostdev pci", "<hostdev mode='subsystem' type='pci' managed='yes'><source><address domain='0' bus='3' slot='0' function='0'/></source></hostdev>", "<hostdev", "<hostdev" },
        { "hostdev usb", "<hostdev mode='subsystem' type='usb'><source><vendor id='0x1234'/><product id='0xbeef'/></source></hostdev>", "0xbeef", "<hostdev" },
        { "filesystem", "<filesystem type='mount' accessmode='passthrough'><source dir='/etc'/><target dir='hostetc'/></filesystem>", "hostetc", "<filesystem" },
        { "serial file", "<serial type='file'><source path='/etc/cron.d/evil'/><target port='1'/></serial>", "/etc/cron.d/evil", "<serial type='file'" },
        { "serial unix", "<serial type='unix'><source mode='connect' path='/run/evil.sock'/><target port='1'/></serial>", "/run/evil.sock", "<serial type='unix'" },
        { "serial dev", "<serial type='dev'><source path='/dev/ttyS0'/><target port='1'/></serial>", "/dev/ttyS0", "<serial type='dev'" },
        { "serial pipe", "<serial type='pipe'><source path='/tmp/evilpipe'/><target port='1'/></serial>", "/tmp/evilpipe", "<serial type='pipe'" },
        { "console file", "<console type='file'><source path='/root/.bashrc'/><target type='virtio' port='1'/></console>", "/root/.bashrc", "<console type='file'" },
        { "channel unix (not virtio)", "<channel type='unix'><source mode='bind' path='/var/run/evil'/><target type='guestfwd' address='10.0.2.1' port='4600'/></channel>", "/var/run/evil", "<channel type='unix'" },
        { "parallel file", "<parallel type='file'><source path='/etc/passwd'/><target port='0'/></parallel>", "/etc/passwd", "<parallel" },
        { "pty with a log file", "<serial type='pty'><log file='/etc/shadow' append='on'/><target port='2'/></serial>", "/etc/shadow", "<log file='/etc/shadow'" },
        { "ethernet script", "<interface type='ethernet'><script path='/tmp/evil-up'/><downscript path='/tmp/evil-down'/><target dev='tap9'/></interface>", "/tmp/evil-", "<script" },
        { "bridge script", "<interface type='bridge'><source bridge='br0'/><script path='/tmp/evil-up'/></interface>", "/tmp/evil-up", "<script" },
        { "interface backend tap", "<interface type='network'><source network='default'/><backend tap='/dev/net/evil' vhost='/dev/vhost-evil'/></interface>", "/dev/net/evil", "<backend" },
        { "interface rom", "<interface type='network'><source network='default'/><rom file='/tmp/evil.rom'/></interface>", "/tmp/evil.rom", "<rom" },
        { "interface hostdev", "<interface type='hostdev' managed='yes'><source><address type='pci' domain='0' bus='4' slot='0' function='1'/></source></interface>", "type='hostdev'", "<interface type='hostdev'" },
        { "interface vhostuser", "<interface type='vhostuser'><source type='unix' path='/run/vhost.sock' mode='client'/></interface>", "/run/vhost.sock", "<interface type='vhostuser'" },
        { "input evdev", "<input type='evdev'><source dev='/dev/input/event0' grab='all'/></input>", "/dev/input/event0", "<input type='evdev'" },
        { "input passthrough", "<input type='passthrough' bus='virtio'><source evdev='/dev/input/event1'/></input>", "/dev/input/event1", "<input type='passthrough'" },
        { "tpm passthrough", "<tpm model='tpm-tis'><backend type='passthrough'><device path='/dev/tpm0'/></backend></tpm>", "/dev/tpm0", "<tpm" },
        { "nvdimm", "<memory model='nvdimm'><source><path>/etc/nvdimm</path></source><target><size unit='KiB'>524288</size><node>0</node></target></memory>", "/etc/nvdimm", "<memory model='nvdimm'" },
        { "shmem server", "<shmem name='evil'><model type='ivshmem-doorbell'/><server path='/tmp/evil-shmem'/></shmem>", "/tmp/evil-shmem", "<shmem" },
        { "rng egd unix", "<rng model='virtio'><backend model='egd' type='unix'><source mode='connect' path='/run/egd.sock'/></backend></rng>", "/run/egd.sock", "<rng" },
        { "rng from a file", "<rng model='virtio'><backend model='random'>/etc/shadow</backend></rng>", "/etc/shadow", "<rng" },
        { "smartcard database", "<smartcard mode='host-certificates'><certificate>a</certificate><certificate>b</certificate><certificate>c</certificate><database>/etc/pki/nssdb</database></smartcard>", "/etc/pki/nssdb", "<smartcard" },
        { "graphics socket", "<graphics type='vnc' socket='/tmp/evil-vnc.sock'/>", "/tmp/evil-vnc.sock", "<graphics" },
        { "graphics rendernode", "<graphics type='egl-headless'><gl rendernode='/dev/dri/renderD128'/></graphics>", "renderD128", "<graphics" },
        { "audio file", "<audio id='1' type='file' path='/etc/motd'/>", "/etc/motd", "<audio" },
        { "lease", "<lease><lockspace>somearea</lockspace><key>somekey</key><target path='/some/lease/path' offset='1024'/></lease>", "/some/lease/path", "<lease" },
        { "unknown device kind", "<futuredevice model='x'/>", "futuredevice", "<futuredevice" },
        { "second emulator", "<emulator>/tmp/other-evil</emulator>", "/tmp/other-evil", "<emulator>/tmp/other-evil" },
        { "cdrom on a host file", "<disk type='file' device='cdrom'><source file='/etc/shadow'/><target dev='sda' bus='sata'/><readonly/></disk>", "/etc/shadow", "disk sda" },
        { "read-only disk on a host device", "<disk type='block' device='disk'><source dev='/dev/sda'/><target dev='vdc' bus='virtio'/><readonly/></disk>", "/dev/sda", "disk vdc" },
        { "network disk", "<disk type='network' device='disk'><source protocol='nbd' name='x'><host name='evil.example' port='10809'/></source><target dev='vdd' bus='virtio'/></disk>", "evil.example", "disk vdd" },
        { "device seclabel", "<serial type='pty'><source><seclabel model='dac' relabel='no'/></source><target port='3'/></serial>", "relabel='no'", "<seclabel" },
    };

    [Theory]
    [MemberData(nameof(HostileDevices))]
    public void A_hostile_device_is_dropped_and_listed(string kind, string device, string mustNotSurvive, string changeNames)
    {
        var result = Rewrite(Saved(devices: device));

        Assert.DoesNotContain(mustNotSurvive, result.Xml.Replace('"', '\''), StringComparison.Ordinal);
        Assert.True(result.Changes.Any(c => c.Element.StartsWith(changeNames, StringComparison.Ordinal)),
            $"{kind}: no change names {changeNames}; changes: {string.Join(" | ", result.Changes)}");
        AssertSafeDevicesKept(result.Xml);
    }

    public static TheoryData<string, string> HostileOsElements => new()
    {
        { "<kernel>/boot/evil-vmlinuz</kernel><initrd>/boot/evil-initrd</initrd><cmdline>init=/bin/sh</cmdline>", "/boot/evil" },
        { "<dtb>/tmp/evil.dtb</dtb>", "/tmp/evil.dtb" },
        { "<loader readonly='yes' type='rom'>/tmp/evil-bios.bin</loader>", "/tmp/evil-bios.bin" },
        { "<acpi><table type='slic'>/tmp/evil-slic.dat</table></acpi>", "/tmp/evil-slic.dat" },
        { "<init>/bin/evil</init>", "/bin/evil" },
    };

    [Theory]
    [MemberData(nameof(HostileOsElements))]
    public void Boot_files_outside_the_restore_directory_are_dropped(string os, string mustNotSurvive)
    {
        var result = Rewrite(Saved(os: os));

        Assert.DoesNotContain(mustNotSurvive, result.Xml, StringComparison.Ordinal);
        Assert.Contains(result.Changes, c => c.Element.Contains(mustNotSurvive, StringComparison.Ordinal) && c.Action == XmlChange.Dropped);
        Assert.Equal("hvm", XElement.Parse(result.Xml).Element("os")!.Element("type")!.Value);
    }

    [Fact]
    public void The_saved_emulator_is_replaced_by_the_hosts()
    {
        var result = Rewrite(Saved());

        var emulators = XElement.Parse(result.Xml).Descendants("emulator").Select(e => e.Value).ToList();
        Assert.Equal([HostEmulator], emulators);
        var change = Assert.Single(result.Changes, c => c.Element.Contains("evil-emulator", StringComparison.Ordinal));
        Assert.Equal(XmlChange.Replaced, change.Action);
        Assert.Contains(HostEmulator, change.Reason, StringComparison.Ordinal);
    }

    [Fact]
    public void The_emulator_query_reads_type_arch_and_machine() =>
        Assert.Equal(("kvm", "x86_64", "pc-q35-7.2"), NewDomainXml.EmulatorQuery(Saved()));

    [Fact]
    public void Qemu_namespace_elements_and_attributes_are_dropped_but_metadata_stays()
    {
        const string qemu = " xmlns:qemu='http://libvirt.org/schemas/domain/qemu/1.0'";
        var top = """
            <metadata><app:info xmlns:app='http://example.org/app'>kept</app:info></metadata>
            <qemu:commandline><qemu:arg value='-device'/><qemu:arg value='evil,file=/etc/shadow'/></qemu:commandline>
            <qemu:capabilities><qemu:add capability='blockdev'/></qemu:capabilities>
            <qemu:override><qemu:device alias='ua-x'><qemu:frontend><qemu:property name='evilprop' type='string' value='x'/></qemu:frontend></qemu:device></qemu:override>
            <qemu:deprecation behavior='crash'/>
            """;
        var result = Rewrite(Saved(top: top, rootAttributes: qemu, devices: "<video qemu:evilattr='1'><model type='virtio'/></video>"));

        Assert.DoesNotContain("qemu/1.0", result.Xml, StringComparison.Ordinal);
        Assert.DoesNotContain("evil", result.Xml, StringComparison.Ordinal);
        var root = XElement.Parse(result.Xml);
        Assert.Equal("kept", root.Element("metadata")!.Elements().Single().Value);
        Assert.Single(root.Element("devices")!.Elements("video"));
        Assert.Equal(5, result.Changes.Count(c => c.Element.Contains("qemu", StringComparison.Ordinal)));
    }

    [Fact]
    public void Security_labels_are_dropped()
    {
        var result = Rewrite(Saved(top: "<seclabel type='static' model='dac' relabel='no'><label>+0:+0</label></seclabel><seclabel type='none' model='apparmor'/>"));

        Assert.DoesNotContain("seclabel", result.Xml, StringComparison.Ordinal);
        Assert.Equal(2, result.Changes.Count(c => c.Element.StartsWith("<seclabel", StringComparison.Ordinal)));
    }

    [Fact]
    public void Anything_else_naming_a_host_path_drops_its_top_level_element()
    {
        var result = Rewrite(Saved(top: "<sysinfo type='smbios'><bios><entry name='vendor'>/etc/evil</entry></bios></sysinfo><resource><partition>/machine</partition></resource>"));

        Assert.DoesNotContain("/etc/evil", result.Xml, StringComparison.Ordinal);
        Assert.Contains(result.Changes, c => c.Element.StartsWith("<sysinfo", StringComparison.Ordinal) && c.Reason.Contains("/etc/evil", StringComparison.Ordinal));
        Assert.Equal("/machine", XElement.Parse(result.Xml).Element("resource")!.Element("partition")!.Value); // a cgroup, not a file
    }

    [Fact]
    public void A_pflash_loader_becomes_firmware_autoselection()
    {
        var result = Rewrite(Saved(os: "<loader readonly='yes' secure='yes' type='pflash'>/usr/share/OVMF/OVMF_CODE.secboot.fd</loader><nvram>/var/lib/libvirt/qemu/nvram/web1_VARS.fd</nvram>"));

        var os = XElement.Parse(result.Xml).Element("os")!;
        Assert.Equal("efi", os.Attribute("firmware")!.Value);
        Assert.Null(os.Element("loader"));
        Assert.Null(os.Element("nvram"));
        Assert.Contains(result.Changes, c => c.Action == XmlChange.Replaced && c.Element.Contains("OVMF", StringComparison.Ordinal));
    }

    [Fact]
    public void Boot_files_inside_the_restore_directory_are_kept()
    {
        var os = $"<kernel>{RestoreDir}/vmlinuz</kernel><initrd>{RestoreDir}/initrd.img</initrd><cmdline>console=ttyS0</cmdline>";
        var result = Rewrite(Saved(os: os));

        var kept = XElement.Parse(result.Xml).Element("os")!;
        Assert.Equal($"{RestoreDir}/vmlinuz", kept.Element("kernel")!.Value);
        Assert.Equal("console=ttyS0", kept.Element("cmdline")!.Value);
        Assert.DoesNotContain(result.Changes, c => c.Element.Contains("kernel", StringComparison.Ordinal) || c.Element.Contains("cmdline", StringComparison.Ordinal));
    }

    [Fact]
    public void A_path_that_climbs_out_of_the_restore_directory_is_outside()
    {
        var result = Rewrite(Saved(os: $"<kernel>{RestoreDir}/../../boot/vmlinuz</kernel>"));

        Assert.DoesNotContain("vmlinuz", result.Xml, StringComparison.Ordinal);
        Assert.False(Policy.IsInside($"{RestoreDir}/../x"));
        Assert.False(Policy.IsInside($"{RestoreDir}-other/x"));
        Assert.False(Policy.IsInside(RestoreDir));
        Assert.True(Policy.IsInside($"{RestoreDir}/x"));
    }

    [Fact]
    public void The_guest_agent_channel_keeps_working_with_a_socket_libvirt_chooses()
    {
        var channel = "<channel type='unix'><source mode='bind' path='/etc/evil-agent.sock'/><target type='virtio' name='org.qemu.guest_agent.0'/></channel>";
        var result = Rewrite(Saved(devices: channel));

        var kept = XElement.Parse(result.Xml).Descendants("channel").Single();
        Assert.Null(kept.Element("source")!.Attribute("path"));
        Assert.Equal("org.qemu.guest_agent.0", kept.Element("target")!.Attribute("name")!.Value);
        Assert.Contains(result.Changes, c => c.Action == XmlChange.Replaced && c.Element.Contains("evil-agent", StringComparison.Ordinal));
    }

    [Fact]
    public void Harmless_devices_stay_and_a_clean_xml_has_only_the_emulator_change()
    {
        var devices = """
            <channel type='unix'><source mode='bind'/><target type='virtio' name='org.qemu.guest_agent.0'/></channel>
            <rng model='virtio'><backend model='random'>/dev/urandom</backend></rng>
            <controller type='usb' model='qemu-xhci'/><input type='tablet' bus='usb'/><video><model type='virtio'/></video>
            <memballoon model='virtio'/><graphics type='vnc' port='-1' autoport='yes'><listen type='address' address='127.0.0.1'/></graphics>
            <disk type='file' device='cdrom'><target dev='sda' bus='sata'/><readonly/></disk>
            """;
        var result = Rewrite(Saved(devices: devices));

        var change = Assert.Single(result.Changes);
        Assert.Equal(XmlChange.Replaced, change.Action);
        var kept = XElement.Parse(result.Xml).Element("devices")!;
        foreach (var kind in new[] { "channel", "rng", "controller", "input", "video", "memballoon", "graphics" })
            Assert.Single(kept.Elements(kind));
        Assert.Equal("/dev/urandom", kept.Element("rng")!.Element("backend")!.Value);
        Assert.Equal(["vda", "sda"], kept.Elements("disk").Select(d => d.Element("target")!.Attribute("dev")!.Value));
        AssertSafeDevicesKept(result.Xml);
    }

    [Fact]
    public void Trusting_the_saved_xml_keeps_it_apart_from_what_makes_the_domain_new()
    {
        var hostile = "<hostdev mode='subsystem' type='pci'><source><address domain='0' bus='3' slot='0' function='0'/></source></hostdev>"
                      + "<disk type='file' device='cdrom'><source file='/iso/install.iso'/><target dev='sda' bus='sata'/><readonly/></disk>"
                      + "<disk type='file' device='disk'><source file='/img/other.qcow2'/><target dev='vdz' bus='virtio'/></disk>";
        var result = Rewrite(Saved(devices: hostile), Policy with { HostEmulator = null, Trusted = true });

        Assert.Contains("/tmp/x/evil-emulator", result.Xml, StringComparison.Ordinal);
        Assert.Contains("<hostdev", result.Xml, StringComparison.Ordinal);
        Assert.Contains("/iso/install.iso", result.Xml, StringComparison.Ordinal);
        Assert.DoesNotContain("/img/other.qcow2", result.Xml, StringComparison.Ordinal); // would share the original's disk
        Assert.DoesNotContain("/img/web1.qcow2", result.Xml, StringComparison.Ordinal);
        var change = Assert.Single(result.Changes);
        Assert.Contains("vdz", change.Element, StringComparison.Ordinal);
    }

    [Fact]
    public void A_doctype_in_the_saved_xml_is_refused()
    {
        var xml = "<!DOCTYPE domain [<!ENTITY x SYSTEM 'file:///etc/shadow'>]>" + Saved().Replace("<name>web1</name>", "<name>&x;</name>", StringComparison.Ordinal);

        var error = Assert.Throws<RestoreException>(() => Rewrite(xml));
        Assert.Contains("does not parse", error.Message, StringComparison.Ordinal);
    }

    /// <summary>The restored disk, the network, the pty serial and console survive every case.</summary>
    private static void AssertSafeDevicesKept(string xml)
    {
        var devices = XElement.Parse(xml).Element("devices")!;
        var vda = devices.Elements("disk").Single(d => d.Element("target")!.Attribute("dev")!.Value == "vda");
        Assert.Equal($"{RestoreDir}/vda.qcow2", vda.Element("source")!.Attribute("file")!.Value);
        Assert.Contains(devices.Elements("interface"), i => i.Element("source")?.Attribute("network")?.Value == "default");
        Assert.Contains(devices.Elements("serial"), s => s.Attribute("type")!.Value == "pty" && s.Element("target")!.Attribute("port")!.Value == "0");
        Assert.Single(devices.Elements("console"));
        Assert.Equal([HostEmulator], devices.Elements("emulator").Select(e => e.Value));
    }
}
