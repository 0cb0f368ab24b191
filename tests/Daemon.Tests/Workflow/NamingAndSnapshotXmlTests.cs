using System.Xml.Linq;
using Backupd.Daemon.Libvirt;
using Backupd.Daemon.Workflow;
using CsCheck;

namespace Backupd.Daemon.Tests.Workflow;

public class NamingAndSnapshotXmlTests
{
    private static DomainDisk Disk(string target, string? encryption = null, string device = "disk") =>
        new(target, device, "file", $"/i/{target}.qcow2", "qcow2", false, false, null, encryption, [], null, false);

    [Fact]
    public void Run_ids_round_trip_through_overlay_names_and_plain_images_are_not_overlays()
    {
        Gen.Int[0, 100_000_000].Sample(seconds =>
        {
            var runId = OverlayNaming.NewRunId(DateTimeOffset.UnixEpoch.AddSeconds(seconds));
            var overlay = OverlayNaming.OverlayPath("/var/lib/libvirt/images/a b.qcow2", "file", runId, "6f3c2a9e-1111", "vda", null, "/state");
            return OverlayNaming.IsRunId(runId) && OverlayNaming.RunIdOf(overlay) == runId && !OverlayNaming.IsOverlay("/var/lib/libvirt/images/a b.qcow2");
        });
        Assert.False(OverlayNaming.IsOverlay("/i/disk.backupd-notarun.qcow2"));
    }

    [Fact]
    public void Block_devices_and_scratch_directories_get_prefixed_overlay_names()
    {
        const string run = "20261126T092300Z-1a2b3c4d";
        Assert.Equal("/state/overlays/6f3c2a9e-vdb-lv.backupd-20261126T092300Z-1a2b3c4d.qcow2",
            OverlayNaming.OverlayPath("/dev/vg/lv", "block", run, "6f3c2a9e-1111", "vdb", null, "/state"));
        Assert.Equal("/scratch/6f3c2a9e-vda-a.qcow2.backupd-20261126T092300Z-1a2b3c4d.qcow2",
            OverlayNaming.OverlayPath("/i/a.qcow2", "file", run, "6f3c2a9e-1111", "vda", "/scratch", "/state"));
    }

    [Fact]
    public void Snapshot_xml_lists_every_disk_explicitly()
    {
        var xml = XElement.Parse(SnapshotXml.Build("r", [Disk("vda"), Disk("hdc", device: "cdrom"), Disk("vdb")],
            new Dictionary<string, string> { ["vda"] = "/i/vda.o", ["vdb"] = "/i/vdb.o" }));

        var disks = xml.Element("disks")!.Elements("disk").ToList();
        Assert.Equal(["vda", "hdc", "vdb"], disks.Select(d => (string)d.Attribute("name")!));
        Assert.Equal(["external", "no", "external"], disks.Select(d => (string)d.Attribute("snapshot")!));
        Assert.Equal("/i/vda.o", (string)disks[0].Element("source")!.Attribute("file")!);
        Assert.Equal("qcow2", (string)disks[0].Element("driver")!.Attribute("type")!);
    }

    [Fact]
    public void A_luks_disk_gets_an_encrypted_overlay_with_its_own_secret()
    {
        const string encryption = "<encryption format='luks'><secret type='passphrase' uuid='0a81f5b2-8403-7b23-c8d6-21ccc2f80d6f'/></encryption>";
        var xml = XElement.Parse(SnapshotXml.Build("r", [Disk("vda", encryption)], new Dictionary<string, string> { ["vda"] = "/i/o" }));

        var enc = xml.Descendants("source").Single().Element("encryption");
        Assert.NotNull(enc);
        Assert.Equal("luks", (string)enc.Attribute("format")!);
        Assert.Equal("0a81f5b2-8403-7b23-c8d6-21ccc2f80d6f", (string)enc.Element("secret")!.Attribute("uuid")!);
    }

    [Theory]
    [InlineData("<encryption format='qcow'><secret type='passphrase' uuid='0a81f5b2-8403-7b23-c8d6-21ccc2f80d6f'/></encryption>", "only LUKS")]
    [InlineData("<encryption format='luks'/>", "names no secret")]
    public void Encryption_we_cannot_reproduce_is_refused_never_a_plaintext_overlay(string encryption, string expected)
    {
        var e = Assert.Throws<BackupRefusedException>(() => SnapshotXml.Build("r", [Disk("vda", encryption)], new Dictionary<string, string> { ["vda"] = "/i/o" }));
        Assert.Contains(expected, e.Message, StringComparison.Ordinal);
        Assert.Contains("plaintext", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Unknown_and_ineligible_named_disks_are_bad_requests()
    {
        var disks = new[] { Disk("vda"), Disk("hdc", device: "cdrom") };
        Assert.Contains("'vdz'", Assert.Throws<BackupRefusedException>(() => DiskSelection.Select(disks, ["vdz"], [])).Message, StringComparison.Ordinal);
        Assert.Contains("cdrom", Assert.Throws<BackupRefusedException>(() => DiskSelection.Select(disks, ["hdc"], [])).Message, StringComparison.Ordinal);
        Assert.Contains("nothing to back up", Assert.Throws<BackupRefusedException>(() => DiskSelection.Select(disks, [], ["vda"])).Message, StringComparison.Ordinal);
        var ok = DiskSelection.Select(disks, [], []);
        Assert.Equal(["vda"], ok.Selected.Select(d => d.Target));
    }
}
