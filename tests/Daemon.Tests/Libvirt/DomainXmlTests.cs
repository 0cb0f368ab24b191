using Backupd.Daemon.Libvirt;

namespace Backupd.Daemon.Tests.Libvirt;

public class DomainXmlTests
{
    private static string Sample(string name) => File.ReadAllText(Path.Combine(AppContext.BaseDirectory, "Samples", name));

    [Fact]
    public void Live_xml_gives_each_disk_with_its_full_backing_chain_and_mirror_state()
    {
        var disks = DomainXml.ParseDisks(Sample("live-active-commit.xml"));

        Assert.Equal(["vda", "vdb", "hdc"], disks.Select(d => d.Target));
        var vda = disks[0];
        Assert.Equal(("disk", "file", "qcow2"), (vda.Device, vda.Type, vda.Format));
        Assert.Equal("/images/base.qcow2.backupd-x1.qcow2", vda.SourcePath);
        Assert.Equal(["/images/base.qcow2", "/images/tmpl.qcow2"], vda.BackingChain.Select(b => b.Path));
        Assert.Equal(["qcow2", "qcow2"], vda.BackingChain.Select(b => b.Format));
        Assert.Equal("active-commit", vda.MirrorJob);
        Assert.True(vda.MirrorReady);

        var vdb = disks[1];
        Assert.Null(vdb.MirrorJob);
        Assert.False(vdb.MirrorReady);
        Assert.Equal(["raw"], vdb.BackingChain.Select(b => b.Format));

        var hdc = disks[2];
        Assert.Equal("cdrom", hdc.Device);
        Assert.True(hdc.ReadOnly);
        Assert.Null(hdc.SourcePath);
        Assert.Empty(hdc.BackingChain);
    }

    [Fact]
    public void Network_block_shareable_and_encrypted_disks_are_recognised()
    {
        const string xml = """
            <domain type='qemu'><devices>
              <disk type='network' device='disk'><driver type='raw'/><source protocol='rbd' name='pool/img'/><target dev='vda'/></disk>
              <disk type='block' device='disk'><driver type='raw'/><source dev='/dev/vg/lv'/><target dev='vdb'/><shareable/></disk>
              <disk type='file' device='disk'><driver type='qcow2'/>
                <source file='/i/enc.qcow2'><encryption format='luks'><secret type='passphrase' uuid='0a81f5b2-8403-7b23-c8d6-21ccc2f80d6f'/></encryption></source>
                <target dev='vdc'/></disk>
              <disk type='file' device='floppy'><source file='/i/f.img'/><target dev='fda'/></disk>
            </devices></domain>
            """;
        var disks = DomainXml.ParseDisks(xml);

        Assert.Equal("rbd", disks[0].NetworkProtocol);
        Assert.Null(disks[0].SourcePath);
        Assert.Equal(("block", "/dev/vg/lv", true), (disks[1].Type, disks[1].SourcePath, disks[1].Shareable));
        Assert.True(disks[2].Encrypted);
        Assert.Contains("0a81f5b2-8403-7b23-c8d6-21ccc2f80d6f", disks[2].EncryptionXml, StringComparison.Ordinal);
        Assert.False(disks[1].Encrypted);
        Assert.Equal("floppy", disks[3].Device);
    }

    [Fact]
    public void Agent_channel_state_is_read_from_the_live_xml()
    {
        var live = Sample("live-active-commit.xml");
        Assert.True(DomainXml.HasAgentChannel(live));
        Assert.False(DomainXml.AgentConnected(live));
        Assert.True(DomainXml.AgentConnected(live.Replace("state='disconnected'", "state='connected'", StringComparison.Ordinal)));
        Assert.False(DomainXml.HasAgentChannel("<domain><devices/></domain>"));
    }

    [Fact]
    public void Persistent_definition_on_an_overlay_is_pointed_back_at_the_base_without_backing_store()
    {
        var inactive = Sample("inactive-on-overlay.xml");
        var bases = new Dictionary<string, DiskRepoint>
        {
            ["vda"] = new("/images/base.qcow2.backupd-x1.qcow2", new("file", "/images/base.qcow2", "qcow2")),
            ["vdb"] = new("/images/b.raw.backupd-x1.qcow2", new("file", "/images/b.raw", "raw")),
            ["hdc"] = new("/elsewhere.backupd-x1.qcow2", new("file", "/nothing", "raw")),
        };

        var fixedXml = DomainXml.PointDisksAt(inactive, bases);

        Assert.NotNull(fixedXml);
        var disks = DomainXml.ParseDisks(fixedXml);
        Assert.Equal(("/images/base.qcow2", "qcow2"), (disks[0].SourcePath, disks[0].Format));
        Assert.Equal(("/images/b.raw", "raw"), (disks[1].SourcePath, disks[1].Format));
        Assert.All(disks, d => Assert.Empty(d.BackingChain));
        Assert.DoesNotContain("backupd-x1", fixedXml, StringComparison.Ordinal);
        Assert.Null(disks[2].SourcePath); // not on the named overlay: untouched
        // Already right: nothing to redefine.
        Assert.Null(DomainXml.PointDisksAt(fixedXml, bases));
    }

    [Fact]
    public void A_block_device_base_gets_its_type_and_dev_attribute_back()
    {
        const string xml = """
            <domain><devices><disk type='file' device='disk'><driver type='qcow2'/>
              <source file='/scratch/lv.backupd-r1.qcow2'/><backingStore type='block'><format type='raw'/><source dev='/dev/vg/lv'/></backingStore>
              <target dev='vda'/></disk></devices></domain>
            """;
        var fixedXml = DomainXml.PointDisksAt(xml, new Dictionary<string, DiskRepoint> { ["vda"] = new("/scratch/lv.backupd-r1.qcow2", new("block", "/dev/vg/lv", "raw")) })!;
        var disk = Assert.Single(DomainXml.ParseDisks(fixedXml));
        Assert.Equal(("block", "/dev/vg/lv", "raw"), (disk.Type, disk.SourcePath, disk.Format));
        Assert.Contains("dev=\"/dev/vg/lv\"", fixedXml, StringComparison.Ordinal);
    }

    [Fact]
    public void Malformed_xml_is_a_clear_format_error()
    {
        var e = Assert.Throws<FormatException>(() => DomainXml.ParseDisks("<domain><devices>"));
        Assert.Contains("does not parse", e.Message, StringComparison.Ordinal);
    }
}
