using System.Text.Json;
using System.Xml.Linq;
using Backupd.Daemon.Images;
using Backupd.Daemon.Libvirt;
using Backupd.Daemon.Workflow;
using Backupd.Integration.Fixtures;
using Microsoft.Extensions.Logging.Abstractions;

namespace Backupd.Integration;

/// <summary>
/// A LUKS-encrypted qcow2 disk (libvirt secret + encrypt.format=luks): the temporary overlay must be
/// encrypted with the disk's own secret, so guest writes during the backup never reach the disk in
/// plaintext, and the disk must pivot back onto its encrypted base.
/// </summary>
[Trait("Category", "Integration")]
public sealed class LiveBackupEncryptionTests : IAsyncLifetime
{
    private const long MiB = TestVm.MiB;
    private const byte Marker = 0x5a;
    private readonly string work = Directory.CreateTempSubdirectory("bkd-luks-").FullName;
    private readonly string secretUuid = Guid.NewGuid().ToString();
    private readonly string passphrase = $"bkd-test-{Guid.NewGuid():N}";
    private TestVm? vm;

    private string Repository => Path.Combine(work, "repo");

    public async Task InitializeAsync()
    {
        await Requirements.LibvirtAndQemuAsync();
        var secretXml = Path.Combine(work, "secret.xml");
        await File.WriteAllTextAsync(secretXml, $"<secret ephemeral='no' private='yes'><uuid>{secretUuid}</uuid><description>backupd test {secretUuid}</description></secret>");
        await Tools.Virsh("secret-define", secretXml);
        var value = Path.Combine(work, "secret.value");
        await File.WriteAllTextAsync(value, passphrase);
        await Tools.Virsh("secret-set-value", secretUuid, "--file", value, "--plain");
        File.Delete(value);
    }

    public async Task DisposeAsync()
    {
        if (vm is not null) await vm.DisposeAsync();
        await Tools.TryRunAsync("virsh", "-c", "qemu:///system", "secret-undefine", secretUuid);
        Directory.Delete(work, recursive: true);
    }

    /// <summary>A stopped test VM whose vda is replaced by an empty LUKS qcow2 and declared with its secret.</summary>
    private async Task<TestVm> EncryptedVmAsync()
    {
        var created = await TestVm.CreateAsync(new DiskSpec("vda", FillPattern: null));
        vm = created;
        var path = created.Disk("vda").Path;
        File.Delete(path);
        // LUKS key setup benchmarks PBKDF2 on thread CPU time; on a loaded VM qemu-img sometimes reports
        // "Unable to get accurate CPU usage". That is the harness's image, not the product: retry it.
        for (var attempt = 1; ; attempt++)
        {
            var made = await Tools.TryRunAsync("qemu-img", "create", "-q", "-f", "qcow2",
                "--object", $"secret,id=sec0,data={passphrase}",
                "-o", "encrypt.format=luks,encrypt.key-secret=sec0", path, "64M");
            if (made.ExitCode == 0) break;
            if (attempt == 5) throw new InvalidOperationException($"qemu-img could not create a LUKS qcow2: {made.Stderr}");
        }
        var xml = XDocument.Parse(await created.InactiveXmlAsync());
        var source = xml.Descendants("disk").Single(d => d.Element("target")?.Attribute("dev")?.Value == "vda").Element("source")!;
        source.Add(new XElement("encryption", new XAttribute("format", "luks"),
            new XElement("secret", new XAttribute("type", "passphrase"), new XAttribute("uuid", secretUuid))));
        var file = Path.Combine(work, "domain.xml");
        await File.WriteAllTextAsync(file, xml.ToString());
        await Tools.Virsh("define", file);
        return created;
    }

    private static async Task<JsonElement> InfoAsync(string path) =>
        JsonDocument.Parse(await Tools.RunAsync("qemu-img", "info", "-U", "--output=json", path)).RootElement;

    /// <summary>qemu-img info's "encrypted" (absent for a plaintext image).</summary>
    private static bool IsEncrypted(JsonElement info) => info.TryGetProperty("encrypted", out var e) && e.GetBoolean();

    /// <summary>True when some 4 KiB-aligned block of the file is entirely <paramref name="pattern"/>: plaintext guest data.</summary>
    private static bool ContainsPlainBlock(string path, byte pattern)
    {
        using var stream = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.ReadWrite);
        var block = new byte[4096];
        int read;
        while ((read = stream.ReadAtLeast(block, block.Length, throwOnEndOfStream: false)) == block.Length)
        {
            if (block.AsSpan().IndexOfAnyExcept(pattern) < 0) return true;
        }
        return false;
    }

    [Fact]
    public async Task Luks_disk_gets_an_encrypted_overlay_no_plaintext_lands_and_it_pivots_back()
    {
        var encrypted = await EncryptedVmAsync();
        var basePath = encrypted.Disk("vda").Path;
        Assert.True(IsEncrypted(await InfoAsync(basePath)), "the test image must be encrypted");
        await encrypted.StartAsync();

        string? overlay = null;
        JsonElement? overlayInfo = null;
        var plainInOverlay = true;
        using var repository = BackupTargets.Open(Repository);
        var hooked = new HookedTarget(repository)
        {
            // Mid-run, after the snapshot: the guest writes a recognisable pattern, then we look at the overlay.
            BeforeFirstFile = async () =>
            {
                overlay = await encrypted.ActiveSourceAsync("vda");
                await encrypted.WriteAsGuestAsync("vda", 2 * MiB, Marker, 2 * MiB);
                overlayInfo = await InfoAsync(overlay!);
                plainInOverlay = ContainsPlainBlock(overlay!, Marker);
            },
        };
        using var hypervisor = LibvirtHypervisor.Open("qemu:///system");
        var workflow = new BackupWorkflow(hypervisor, new QemuImg(), hooked,
            new WorkflowOptions { StateDirectory = Path.Combine(work, "state"), MinimumOverlayFreeBytes = 64 * MiB }, NullLogger.Instance);

        var result = await workflow.RunAsync(new BackupRequest(encrypted.Name, [], []), CancellationToken.None);

        Assert.True(result.Outcome == RunOutcome.Succeeded, $"outcome {result.Outcome}: {result.Error} {string.Join("; ", result.Disks.Select(d => d.Problem))}");
        Assert.NotNull(overlay);
        Assert.True(OverlayNaming.IsOverlay(overlay), $"vda was on '{overlay}' during the copy, not a backupd overlay");
        Assert.False(plainInOverlay, "the guest's write reached the overlay in plaintext");
        Assert.True(IsEncrypted(overlayInfo!.Value), $"overlay is not encrypted: {overlayInfo}");
        Assert.Equal("luks", overlayInfo.Value.GetProperty("format-specific").GetProperty("data").GetProperty("encrypt").GetProperty("format").GetString());

        // Back on the encrypted base, no overlay left, the write kept (through the guest) and never in plaintext on disk.
        Assert.Equal(basePath, await encrypted.ActiveSourceAsync("vda"));
        Assert.Equal(basePath, await encrypted.ActiveSourceAsync("vda", inactive: true));
        Assert.DoesNotContain(".backupd-", await encrypted.InactiveXmlAsync(), StringComparison.Ordinal);
        Assert.Contains(secretUuid, await encrypted.InactiveXmlAsync(), StringComparison.Ordinal);
        Assert.DoesNotContain(Directory.EnumerateFiles(encrypted.Directory), OverlayNaming.IsOverlay);
        Assert.True(await encrypted.GuestReadMatchesAsync("vda", 2 * MiB, 2 * MiB, Marker));
        await encrypted.DestroyAsync();
        Assert.False(ContainsPlainBlock(basePath, Marker), "the guest's write reached the base in plaintext");
        Assert.True(IsEncrypted(await InfoAsync(basePath)));
        // The stored copy is the encrypted image as it was (ciphertext; restoring needs the same secret).
        Assert.Equal(["vda.0"], Assert.Single(result.Disks).Files.Select(f => f.FileKey));
    }
}
