using System.Globalization;
using System.Security;
using System.Xml.Linq;

namespace Backupd.Integration.Fixtures;

/// <summary>A disk of a test VM. FillPattern is written at offset 0, 1 MiB (into the template when WithTemplate).</summary>
public sealed record DiskSpec(
    string Target,
    string Format = "qcow2",
    long SizeBytes = 64 << 20,
    bool WithTemplate = false,
    string Device = "disk",
    bool ReadOnly = false,
    byte? FillPattern = 0x11);

public sealed record TestDisk(string Target, string Path, string Format, string? TemplatePath, string Device, bool ReadOnly);

/// <summary>
/// A throwaway libvirt domain of type 'qemu' (TCG, no OS: it boots to firmware and its block layer is fully live)
/// with real qcow2/raw images made by qemu-img and filled by qemu-io. Names are unique per instance, so tests
/// run in parallel; DisposeAsync always destroys, undefines and deletes everything.
/// </summary>
public sealed class TestVm : IAsyncDisposable
{
    public const string ImageRoot = "/var/lib/libvirt/images/bkd-tests";
    public const long MiB = 1 << 20;

    public string Name { get; }
    public string Uuid { get; private set; } = "";
    public string Directory { get; }
    public IReadOnlyList<TestDisk> Disks { get; }
    public bool Persistent { get; }

    private readonly SemaphoreSlim monitorLock = new(1, 1);

    private TestVm(string name, string directory, IReadOnlyList<TestDisk> disks, bool persistent)
    {
        Name = name;
        Directory = directory;
        Disks = disks;
        Persistent = persistent;
    }

    /// <summary>Defines a persistent domain "bkd-&lt;guid8&gt;" with the given disks; not started.</summary>
    public static Task<TestVm> CreateAsync(params DiskSpec[] disks) => CreateAsync(persistent: true, disks);

    /// <summary>persistent=false creates a transient domain, which starts immediately (libvirt has no defined-but-stopped transient domains).</summary>
    public static async Task<TestVm> CreateAsync(bool persistent, params DiskSpec[] disks)
    {
        await Requirements.LibvirtAndQemuAsync();
        if (disks.Length == 0) disks = [new DiskSpec("vda")];
        var name = $"bkd-{Guid.NewGuid():N}"[..12];
        var directory = Path.Combine(ImageRoot, name);
        System.IO.Directory.CreateDirectory(directory);
        var created = new List<TestDisk>();
        var vm = new TestVm(name, directory, created, persistent);
        try
        {
            foreach (var spec in disks) created.Add(await CreateDiskAsync(directory, spec));
            var xmlPath = Path.Combine(directory, "domain.xml");
            await File.WriteAllTextAsync(xmlPath, DomainXml(name, created));
            await Tools.Virsh(persistent ? "define" : "create", xmlPath);
            vm.Uuid = (await Tools.Virsh("domuuid", name)).Trim();
            return vm;
        }
        catch
        {
            await vm.DisposeAsync();
            throw;
        }
    }

    private static async Task<TestDisk> CreateDiskAsync(string directory, DiskSpec spec)
    {
        var size = spec.SizeBytes.ToString(CultureInfo.InvariantCulture);
        if (spec.Device == "cdrom")
        {
            var iso = Path.Combine(directory, $"{spec.Target}.iso");
            await Tools.RunAsync("qemu-img", "create", "-q", "-f", "raw", iso, "1M");
            return new TestDisk(spec.Target, iso, "raw", null, "cdrom", true);
        }
        var path = Path.Combine(directory, $"{spec.Target}.{spec.Format}");
        string? template = null;
        if (spec.WithTemplate)
        {
            if (spec.Format != "qcow2") throw new ArgumentException("a linked clone needs a qcow2 base", nameof(spec));
            template = Path.Combine(directory, $"{spec.Target}-template.qcow2");
            await Tools.RunAsync("qemu-img", "create", "-q", "-f", "qcow2", template, size);
            if (spec.FillPattern is { } p) await WritePatternAsync(template, "qcow2", 0, MiB, p);
            await Tools.RunAsync("qemu-img", "create", "-q", "-f", "qcow2", "-b", template, "-F", "qcow2", path);
            // The base holds data of its own too, so a chain copy must carry both files.
            if (spec.FillPattern is { } q) await WritePatternAsync(path, "qcow2", MiB, MiB, (byte)(q + 1));
        }
        else
        {
            await Tools.RunAsync("qemu-img", "create", "-q", "-f", spec.Format, path, size);
            if (spec.FillPattern is { } p) await WritePatternAsync(path, spec.Format, 0, MiB, p);
        }
        return new TestDisk(spec.Target, path, spec.Format, template, spec.Device, spec.ReadOnly);
    }

    private static string DomainXml(string name, IReadOnlyList<TestDisk> disks)
    {
        var devices = string.Concat(disks.Select(d => d.Device == "cdrom"
            ? $"""
                <disk type='file' device='cdrom'>
                  <driver name='qemu' type='raw'/>
                  <source file='{SecurityElement.Escape(d.Path)}'/>
                  <target dev='{d.Target}' bus='ide'/>
                  <readonly/>
                </disk>
              """
            : $"""
                <disk type='file' device='disk'>
                  <driver name='qemu' type='{d.Format}'/>
                  <source file='{SecurityElement.Escape(d.Path)}'/>
                  <target dev='{d.Target}' bus='virtio'/>{(d.ReadOnly ? "<readonly/>" : "")}
                </disk>
              """));
        return $"""
            <domain type='qemu'>
              <name>{name}</name>
              <memory unit='MiB'>64</memory>
              <vcpu>1</vcpu>
              <os><type arch='x86_64' machine='pc'>hvm</type><boot dev='hd'/></os>
              <devices>
                <emulator>/usr/bin/qemu-system-x86_64</emulator>
            {devices}
              </devices>
            </domain>
            """;
    }

    public TestDisk Disk(string target) =>
        Disks.FirstOrDefault(d => d.Target == target) ?? throw new ArgumentException($"no disk {target} in {Name}", nameof(target));

    public Task StartAsync() => Tools.Virsh("start", Name);

    /// <summary>Hard stop (virsh destroy).</summary>
    public Task DestroyAsync() => Tools.Virsh("destroy", Name);

    public async Task<string> StateAsync() => (await Tools.Virsh("domstate", Name)).Trim();

    public Task<string> LiveXmlAsync() => Tools.Virsh("dumpxml", Name);

    public Task<string> InactiveXmlAsync() => Tools.Virsh("dumpxml", "--inactive", Name);

    /// <summary>The active source file of a disk per the live XML (after a pivot this must be the base again).</summary>
    public async Task<string?> ActiveSourceAsync(string target, bool inactive = false)
    {
        var xml = XDocument.Parse(inactive ? await InactiveXmlAsync() : await LiveXmlAsync());
        return FindDisk(xml, target)?.Element("source")?.Attribute("file")?.Value;
    }

    /// <summary>Writes `length` bytes of `pattern` at `offset` as the guest would: qemu-io on the running VM's virtio device, through HMP.</summary>
    public async Task WriteAsGuestAsync(string target, long offset, byte pattern, long length)
    {
        var output = await QemuIoAsync(target, $"write -P 0x{pattern:x2} {offset} {length}", "wrote ");
        if (!output.Contains($"wrote {length}/{length} bytes", StringComparison.Ordinal))
            throw new InvalidOperationException($"guest write to {Name}/{target} failed: {output}");
    }

    /// <summary>Reads through the running VM's block layer (the guest view, overlay included) and checks every byte is `pattern`.</summary>
    public async Task<bool> GuestReadMatchesAsync(string target, long offset, long length, byte pattern)
    {
        var output = await QemuIoAsync(target, $"read -P 0x{pattern:x2} {offset} {length}", "read ");
        return !output.Contains("Pattern verification failed", StringComparison.Ordinal);
    }

    /// <summary>
    /// Runs a qemu-io command inside QEMU through HMP. qemu-io prints to QEMU's stdout, which libvirt sends to
    /// /var/log/libvirt/qemu/NAME.log, so the result is read from what the log gains. Calls are serialised per VM.
    /// </summary>
    private async Task<string> QemuIoAsync(string target, string command, string completionMarker)
    {
        await monitorLock.WaitAsync();
        try
        {
            var xml = XDocument.Parse(await LiveXmlAsync());
            var alias = FindDisk(xml, target)?.Element("alias")?.Attribute("name")?.Value
                ?? throw new InvalidOperationException($"{Name} has no live disk {target} (is the VM running?)");
            var log = $"/var/log/libvirt/qemu/{Name}.log";
            var start = File.Exists(log) ? new FileInfo(log).Length : 0;
            var reply = await Tools.Virsh("qemu-monitor-command", Name, "--hmp",
                $"qemu-io -d /machine/peripheral/{alias}/virtio-backend \"{command}\"");
            if (reply.Trim().Length > 0)
                throw new InvalidOperationException($"qemu-io '{command}' on {Name}/{target}: {reply.Trim()}");
            // QEMU's stdout reaches the log through virtlogd, asynchronously: give a loaded box time.
            var deadline = DateTime.UtcNow.AddSeconds(60);
            while (true)
            {
                var appended = ReadFrom(log, start);
                if (appended.Contains(completionMarker, StringComparison.Ordinal)) return appended;
                if (DateTime.UtcNow > deadline)
                    throw new InvalidOperationException($"qemu-io '{command}' on {Name}/{target} printed no result in {log}: '{appended}'");
                await Task.Delay(20);
            }
        }
        finally
        {
            monitorLock.Release();
        }
    }

    private static string ReadFrom(string path, long offset)
    {
        if (!File.Exists(path)) return "";
        using var stream = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.ReadWrite);
        // Shorter than where we started: virtlogd rotated the log meanwhile, so everything in the new file is new.
        stream.Position = offset <= stream.Length ? offset : 0;
        using var reader = new StreamReader(stream);
        return reader.ReadToEnd();
    }

    private static XElement? FindDisk(XDocument xml, string target) =>
        xml.Descendants("disk").FirstOrDefault(d => d.Element("target")?.Attribute("dev")?.Value == target);

    /// <summary>Checks bytes of an image file (read-only, shared lock) with qemu-io; follows the file's backing chain.</summary>
    public static async Task<bool> ImageMatchesAsync(string path, string format, long offset, long length, byte pattern)
    {
        // qemu-io 7.2 exits 1 on a pattern mismatch: that is a "no", any other failure is an error.
        var (exitCode, stdout, stderr) = await Tools.TryRunAsync("qemu-io", "-r", "-U", "-f", format, "-c", $"read -P 0x{pattern:x2} {offset} {length}", path);
        if ((stdout + stderr).Contains("Pattern verification failed", StringComparison.Ordinal)) return false;
        if (exitCode != 0) throw new InvalidOperationException($"qemu-io read of {path} exited {exitCode}: {stderr}{stdout}");
        return true;
    }

    public static Task WritePatternAsync(string path, string format, long offset, long length, byte pattern) =>
        Tools.RunAsync("qemu-io", "-f", format, "-c", $"write -P 0x{pattern:x2} {offset} {length}", path);

    public async ValueTask DisposeAsync()
    {
        await Tools.TryRunAsync("virsh", "-c", "qemu:///system", "destroy", Name);
        if (Persistent) await Tools.TryRunAsync("virsh", "-c", "qemu:///system", "undefine", "--checkpoints-metadata", Name);
        try
        {
            System.IO.Directory.Delete(Directory, recursive: true);
        }
        catch (DirectoryNotFoundException)
        {
        }
        monitorLock.Dispose();
    }
}
