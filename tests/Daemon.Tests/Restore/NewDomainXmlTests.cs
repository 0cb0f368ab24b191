using System.Xml.Linq;
using Backupd.Daemon.Cli;
using Backupd.Daemon.Restore;

namespace Backupd.Daemon.Tests.Restore;

public sealed class NewDomainXmlTests
{
    private const string Saved = """
        <domain type='qemu'>
          <name>web1</name>
          <uuid>6f0e2a55-6a3f-4d1b-9a57-0c1b2b3c4d5e</uuid>
          <memory unit='KiB'>65536</memory>
          <os><type arch='x86_64' machine='pc'>hvm</type><loader readonly='yes' type='pflash'>/usr/share/OVMF/OVMF_CODE.fd</loader><nvram>/var/lib/libvirt/qemu/nvram/web1_VARS.fd</nvram></os>
          <devices>
            <disk type='file' device='disk'>
              <driver name='qemu' type='qcow2'/>
              <source file='/img/web1.qcow2'/>
              <backingStore type='file'><format type='qcow2'/><source file='/img/template.qcow2'/></backingStore>
              <target dev='vda' bus='virtio'/>
            </disk>
            <disk type='block' device='disk'>
              <driver name='qemu' type='raw'/>
              <source dev='/dev/vg/web1-data'/>
              <target dev='vdb' bus='virtio'/>
            </disk>
            <disk type='file' device='cdrom'>
              <target dev='hdc' bus='ide'/>
              <readonly/>
            </disk>
            <interface type='network'><mac address='52:54:00:aa:bb:cc'/><source network='default'/></interface>
          </devices>
        </domain>
        """;

    [Fact]
    public void The_new_domain_gets_a_new_name_uuid_macs_and_the_restored_disk_paths()
    {
        var result = NewDomainXml.Rewrite(Saved, "web1-restored", new Dictionary<string, RestoredDisk> { ["vda"] = new("/restore/vda.qcow2", "qcow2") },
            new SavedXmlPolicy("/restore", "/usr/bin/qemu-system-x86_64"), () => [0x01, 0x02, 0x03]);

        var root = XElement.Parse(result.Xml);
        Assert.Equal("web1-restored", root.Element("name")!.Value);
        Assert.Equal(result.Uuid.ToString("D"), root.Element("uuid")!.Value);
        Assert.NotEqual("6f0e2a55-6a3f-4d1b-9a57-0c1b2b3c4d5e", root.Element("uuid")!.Value);
        Assert.Equal("52:54:00:01:02:03", root.Descendants("mac").Single().Attribute("address")!.Value);
        var vda = root.Descendants("disk").Single(d => d.Element("target")!.Attribute("dev")!.Value == "vda");
        Assert.Equal("/restore/vda.qcow2", vda.Element("source")!.Attribute("file")!.Value);
        Assert.Null(vda.Element("backingStore"));
        Assert.DoesNotContain("/img/", result.Xml, StringComparison.Ordinal);
    }

    [Fact]
    public void Writable_disks_not_restored_and_the_nvram_are_left_out_but_read_only_media_stay()
    {
        var result = NewDomainXml.Rewrite(Saved, "copy", new Dictionary<string, RestoredDisk> { ["vda"] = new("/r/vda.qcow2", "qcow2") }, new SavedXmlPolicy("/r", "/usr/bin/qemu-system-x86_64"));

        var targets = XElement.Parse(result.Xml).Descendants("disk").Select(d => d.Element("target")!.Attribute("dev")!.Value).ToList();
        Assert.Equal(["vda", "hdc"], targets);
        Assert.Contains(result.Changes, n => n.Element.Contains("vdb", StringComparison.Ordinal));
        Assert.Contains(result.Changes, n => n.Element.Contains("nvram", StringComparison.Ordinal));
        Assert.DoesNotContain("web1_VARS", result.Xml, StringComparison.Ordinal);
    }

    [Fact]
    public void Hostile_names_are_stored_as_text_never_as_markup()
    {
        var result = NewDomainXml.Rewrite(Saved, "x<\\name><evil\\>'\"&", new Dictionary<string, RestoredDisk> { ["vda"] = new("/r/a'b\"c&d.qcow2", "qcow2") }, new SavedXmlPolicy("/r", null));

        var root = XElement.Parse(result.Xml);
        Assert.Equal("x<\\name><evil\\>'\"&", root.Element("name")!.Value);
        Assert.Empty(root.Descendants("evil"));
        Assert.Equal("/r/a'b\"c&d.qcow2", root.Descendants("source").First().Attribute("file")!.Value);
    }

    [Theory]
    [InlineData("")]
    [InlineData("a/b")]
    [InlineData("tab\tname")]
    [InlineData("..")]
    public void Names_libvirt_cannot_take_are_refused(string name)
    {
        var error = Assert.Throws<RestoreException>(() => NewDomainXml.Rewrite(Saved, name, new Dictionary<string, RestoredDisk>(), new SavedXmlPolicy("/r", null)));
        Assert.Equal(FailureKind.Usage, error.Kind);
    }
}
