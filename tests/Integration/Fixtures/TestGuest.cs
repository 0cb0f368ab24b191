using System.Diagnostics;
using System.Globalization;
using System.Net.Sockets;
using System.Security.Cryptography;
using System.Text;
using System.Text.RegularExpressions;
using System.Xml.Linq;

namespace Backupd.Integration.Fixtures;

/// <summary>
/// The real minimal Linux guest (issue 11), built by Fixtures/Guest/build-guest.sh from Debian packages once per
/// machine into /var/cache/backupd-tests/guest-HASH (HASH: the package versions and the script), under a
/// file lock so parallel test classes build it once. Nothing is installed on the host.
/// </summary>
public static class GuestImage
{
    public const string CacheRoot = "/var/cache/backupd-tests";
    private static readonly Lazy<Task<string>> Built = new(BuildAsync);

    public static string Script => Path.Combine(AppContext.BaseDirectory, "Fixtures", "Guest", "build-guest.sh");

    /// <summary>The directory holding vmlinuz and initrd.gz.</summary>
    public static Task<string> DirectoryAsync() => Built.Value;

    private static async Task<string> BuildAsync()
    {
        await Requirements.LibvirtAndQemuAsync();
        foreach (var tool in new[] { "/usr/sbin/mkfs.ext4", "/usr/sbin/e2fsck", "/usr/sbin/debugfs", "/usr/bin/ldd", "/usr/bin/apt-get" })
            if (!File.Exists(tool)) throw new InvalidOperationException($"{tool} is missing: apt-get install -y e2fsprogs libc-bin apt");
        var versions = await Tools.RunAsync("bash", Script, "versions");
        if (versions.Contains("=(none)", StringComparison.Ordinal) || versions.Contains("=\n", StringComparison.Ordinal))
            throw new InvalidOperationException($"the guest's packages are not known to apt ({versions.Trim()}): run apt-get update");
        var key = Convert.ToHexString(SHA256.HashData(Encoding.UTF8.GetBytes(versions + await File.ReadAllTextAsync(Script))))[..16].ToLowerInvariant();
        var dir = Path.Combine(CacheRoot, $"guest-{key}");
        Directory.CreateDirectory(CacheRoot);
        using var buildLock = await LockAsync(Path.Combine(CacheRoot, "guest.lock"));
        if (!File.Exists(Path.Combine(dir, "initrd.gz")))
            await Tools.RunAsync("bash", Script, "build", dir);
        return dir;
    }

    /// <summary>An exclusive lock across processes (.NET takes flock for FileShare.None): the build lock.</summary>
    private static async Task<FileStream> LockAsync(string path)
    {
        var deadline = DateTime.UtcNow.AddMinutes(15);
        while (true)
        {
            try { return new FileStream(path, FileMode.OpenOrCreate, FileAccess.ReadWrite, FileShare.None); }
            catch (IOException) when (DateTime.UtcNow < deadline) { await Task.Delay(500); }
        }
    }
}

/// <summary>
/// A running test guest: TCG domain, direct kernel boot, an ext4 data disk vda (qcow2) the guest's writer
/// fills, qemu-ga on org.qemu.guest_agent.0, a control port org.backupd.control (agent-stop/-cont/-kill/-start:
/// qemu-ga is a real process in the guest, so a hung agent is a SIGSTOPped one), serial console to a file.
/// Persistent, so a shutdown leaves it defined (offline merge). DisposeAsync destroys, undefines, deletes.
/// </summary>
public sealed class TestGuest : IAsyncDisposable
{
    public string Name { get; }
    public string Directory { get; }
    public string DataDisk => Path.Combine(Directory, "data.qcow2");
    public string ConsoleLog => Path.Combine(Directory, "console.log");
    /// <summary>Boot to the first "synced" line, as measured by <see cref="BootAsync"/>.</summary>
    public TimeSpan BootTime { get; private set; }

    private TestGuest(string name, string directory)
    {
        Name = name;
        Directory = directory;
    }

    /// <param name="blobMiB">A file of that many MiB of random data put on the data disk at mkfs time (/blob): data a
    /// block pull or a restore has to move, so it takes a while.</param>
    public static async Task<TestGuest> BootAsync(int dataDiskMiB = 128, int blobMiB = 0)
    {
        var image = await GuestImage.DirectoryAsync();
        var name = $"bkd-g{Guid.NewGuid():N}"[..13];
        var dir = Path.Combine(TestVm.ImageRoot, name);
        System.IO.Directory.CreateDirectory(dir);
        var guest = new TestGuest(name, dir);
        try
        {
            var empty = System.IO.Directory.CreateDirectory(Path.Combine(dir, "seed")).FullName;
            if (blobMiB > 0) await Tools.RunAsync("dd", "if=/dev/urandom", $"of={Path.Combine(empty, "blob")}", "bs=1M", $"count={blobMiB}", "status=none");
            var raw = Path.Combine(dir, "data.raw");
            await Tools.RunAsync("truncate", "-s", $"{dataDiskMiB}M", raw);
            await Tools.RunAsync("mkfs.ext4", "-q", "-F", "-d", empty, raw);
            await Tools.RunAsync("qemu-img", "convert", "-O", "qcow2", raw, guest.DataDisk);
            File.Delete(raw);
            var xml = Path.Combine(dir, "domain.xml");
            await File.WriteAllTextAsync(xml, guest.DomainXml(image));
            await Tools.Virsh("define", xml);
            var clock = Stopwatch.StartNew();
            await Tools.Virsh("start", name);
            await guest.WaitForSyncedAsync(1, TimeSpan.FromMinutes(3));
            guest.BootTime = clock.Elapsed;
            return guest;
        }
        catch
        {
            await guest.DisposeAsync();
            throw;
        }
    }

    private string DomainXml(string image) => $"""
        <domain type='qemu'>
          <name>{Name}</name>
          <memory unit='MiB'>192</memory>
          <vcpu>1</vcpu>
          <os>
            <type arch='x86_64' machine='pc'>hvm</type>
            <kernel>{image}/vmlinuz</kernel>
            <initrd>{image}/initrd.gz</initrd>
            <cmdline>console=ttyS0 quiet loglevel=3 panic=-1</cmdline>
          </os>
          <features><acpi/></features>
          <on_poweroff>destroy</on_poweroff>
          <on_reboot>destroy</on_reboot>
          <devices>
            <emulator>/usr/bin/qemu-system-x86_64</emulator>
            <disk type='file' device='disk'>
              <driver name='qemu' type='qcow2'/>
              <source file='{DataDisk}'/>
              <target dev='vda' bus='virtio'/>
            </disk>
            <serial type='file'><source path='{ConsoleLog}'/><target port='0'/></serial>
            <channel type='unix'><source mode='bind'/><target type='virtio' name='org.qemu.guest_agent.0'/></channel>
            <channel type='unix'><source mode='bind'/><target type='virtio' name='org.backupd.control'/></channel>
          </devices>
        </domain>
        """;

    /// <summary>The highest N of a "synced N" line so far (0 before the first).</summary>
    public int Synced()
    {
        var text = ReadConsole();
        var matches = Regex.Matches(text, @"^synced (\d+)\r?$", RegexOptions.Multiline);
        return matches.Count == 0 ? 0 : int.Parse(matches[^1].Groups[1].Value, CultureInfo.InvariantCulture);
    }

    public string ReadConsole()
    {
        if (!File.Exists(ConsoleLog)) return "";
        using var stream = new FileStream(ConsoleLog, FileMode.Open, FileAccess.Read, FileShare.ReadWrite);
        return new StreamReader(stream).ReadToEnd();
    }

    public async Task WaitForSyncedAsync(int atLeast, TimeSpan timeout)
    {
        var deadline = DateTime.UtcNow + timeout;
        while (Synced() < atLeast)
        {
            if (ReadConsole().Contains("BOOT FAILED", StringComparison.Ordinal) || DateTime.UtcNow > deadline)
                throw new TimeoutException($"guest {Name} did not reach 'synced {atLeast}' in {timeout}; console:\n{ReadConsole()}");
            await Task.Delay(200);
        }
    }

    /// <summary>The writer is still writing: N more files synced within the timeout.</summary>
    public async Task<bool> KeepsWritingAsync(int more, TimeSpan timeout)
    {
        var target = Synced() + more;
        try { await WaitForSyncedAsync(target, timeout); return true; }
        catch (TimeoutException) { return false; }
    }

    /// <summary>A guest-agent command through libvirt (virsh); null when the agent did not answer in <paramref name="timeoutSeconds"/>.</summary>
    public async Task<string?> AgentAsync(string json, int timeoutSeconds = 10)
    {
        var (code, stdout, _) = await Tools.TryRunAsync("virsh", "-c", "qemu:///system", "qemu-agent-command", "--timeout", timeoutSeconds.ToString(CultureInfo.InvariantCulture), Name, json);
        return code == 0 ? stdout.Trim() : null;
    }

    public async Task<string?> FreezeStatusAsync() =>
        await AgentAsync("""{"execute":"guest-fsfreeze-status"}""") is { } reply ? System.Text.Json.JsonDocument.Parse(reply).RootElement.GetProperty("return").GetString() : null;

    /// <summary>Sends a control command (agent-stop, agent-cont, agent-kill, agent-start) and waits for the guest to confirm it on the console.</summary>
    public async Task ControlAsync(string command)
    {
        var confirmation = command switch
        {
            "agent-stop" => "control: agent stopped",
            "agent-cont" => "control: agent continued",
            "agent-kill" => "control: agent killed",
            "agent-start" => "control: agent started",
            _ => throw new ArgumentException($"unknown control command '{command}'", nameof(command)),
        };
        var path = XDocument.Parse(await Tools.Virsh("dumpxml", Name)).Descendants("channel")
            .First(c => c.Element("target")?.Attribute("name")?.Value == "org.backupd.control").Element("source")!.Attribute("path")!.Value;
        var before = Regex.Count(ReadConsole(), Regex.Escape(confirmation));
        for (var attempt = 0; attempt < 10; attempt++)
        {
            using (var socket = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified))
            {
                await socket.ConnectAsync(new UnixDomainSocketEndPoint(path));
                await socket.SendAsync(Encoding.ASCII.GetBytes(command + "\n"));
                // The guest re-opens the port per line: stay connected until it has read this one.
                for (var i = 0; i < 30 && Regex.Count(ReadConsole(), Regex.Escape(confirmation)) == before; i++) await Task.Delay(100);
            }
            if (Regex.Count(ReadConsole(), Regex.Escape(confirmation)) > before) return;
        }
        throw new TimeoutException($"guest {Name} did not confirm '{command}'; console:\n{ReadConsole()}");
    }

    public async Task<string> StateAsync() => (await Tools.Virsh("domstate", Name)).Trim();

    /// <summary>The guest's only clean shutdown: guest-shutdown (its /sbin/shutdown unmounts /data, powers off).</summary>
    public async Task ShutdownAsync(TimeSpan? timeout = null)
    {
        await AgentAsync("""{"execute":"guest-shutdown"}""");
        var deadline = DateTime.UtcNow + (timeout ?? TimeSpan.FromMinutes(2));
        while (await StateAsync() != "shut off")
        {
            if (DateTime.UtcNow > deadline) throw new TimeoutException($"guest {Name} did not shut down; console:\n{ReadConsole()}");
            await Task.Delay(250);
        }
        if (!ReadConsole().Contains("data unmounted", StringComparison.Ordinal))
            throw new InvalidOperationException($"guest {Name} powered off without unmounting /data; console:\n{ReadConsole()}");
    }

    public async ValueTask DisposeAsync()
    {
        await Tools.TryRunAsync("virsh", "-c", "qemu:///system", "destroy", Name);
        await Tools.TryRunAsync("virsh", "-c", "qemu:///system", "undefine", "--checkpoints-metadata", Name);
        try { System.IO.Directory.Delete(Directory, recursive: true); }
        catch (DirectoryNotFoundException) { }
    }
}

/// <summary>What <see cref="GuestDisk.CheckAsync"/> found in an image of the guest's data disk.</summary>
public sealed record GuestDiskCheck(bool Clean, string FsckOutput, int ManifestFiles, IReadOnlyList<string> BadFiles);

/// <summary>Checks an image of the data disk without mounting it: e2fsck -fn, debugfs rdump, every manifest file's sha256.</summary>
public static class GuestDisk
{
    /// <summary>The complete lines of the writer's /manifest in an image (read with -U: a running VM's disk works), plus the sha256 of /blob if any.</summary>
    public static async Task<(IReadOnlyList<string> Manifest, string? Blob)> ContentAsync(string image, string format)
    {
        var work = System.IO.Directory.CreateTempSubdirectory("bkd-manifest-").FullName;
        try
        {
            var raw = Path.Combine(work, "disk.raw");
            await Tools.RunAsync("qemu-img", "convert", "-U", "-f", format, "-O", "raw", image, raw);
            var text = await Tools.RunAsync("debugfs", "-R", "cat /manifest", raw);
            var blob = Path.Combine(work, "blob");
            await Tools.TryRunAsync("debugfs", "-R", $"dump /blob {blob}", raw);
            string? sum = null;
            if (File.Exists(blob) && new FileInfo(blob).Length > 0)
            {
                using var stream = File.OpenRead(blob);
                sum = Convert.ToHexString(SHA256.HashData(stream));
            }
            return (text[..(text.LastIndexOf('\n') + 1)].Split('\n', StringSplitOptions.RemoveEmptyEntries), sum);
        }
        finally
        {
            System.IO.Directory.Delete(work, recursive: true);
        }
    }

    /// <summary>
    /// <paramref name="replayJournal"/>: a crash-consistent image: replay its journal first (on the copy, as a mount
    /// would). The image is converted to a private raw copy first (read with -U, so a running VM's disk works).
    /// </summary>
    public static async Task<GuestDiskCheck> CheckAsync(string image, string format, bool replayJournal)
    {
        var work = System.IO.Directory.CreateTempSubdirectory("bkd-fsck-").FullName;
        try
        {
            var raw = Path.Combine(work, "disk.raw");
            await Tools.RunAsync("qemu-img", "convert", "-U", "-f", format, "-O", "raw", image, raw);
            if (replayJournal)
            {
                var (replayCode, replayOut, replayErr) = await Tools.TryRunAsync("e2fsck", "-E", "journal_only", "-y", raw);
                if (replayCode > 1) return new GuestDiskCheck(false, $"journal replay exited {replayCode}: {replayOut}{replayErr}", 0, []);
            }
            var (code, stdout, stderr) = await Tools.TryRunAsync("e2fsck", "-fn", raw);
            var fsck = $"e2fsck -fn exited {code}: {stdout}{stderr}";
            var dump = System.IO.Directory.CreateDirectory(Path.Combine(work, "dump")).FullName;
            await Tools.RunAsync("debugfs", "-R", $"rdump / {dump}", raw);
            var manifest = Path.Combine(dump, "manifest");
            var bad = new List<string>();
            var count = 0;
            if (File.Exists(manifest))
            {
                var text = await File.ReadAllTextAsync(manifest);
                // Only complete lines: a line is appended after its file was synced, so each names an intact file.
                foreach (var line in text[..(text.LastIndexOf('\n') + 1)].Split('\n', StringSplitOptions.RemoveEmptyEntries))
                {
                    count++;
                    var parts = line.Split(' ');
                    var file = Path.Combine(dump, "files", parts[0]);
                    if (parts.Length != 2 || !File.Exists(file)) { bad.Add($"{line}: missing"); continue; }
                    var sum = Convert.ToHexString(SHA256.HashData(await File.ReadAllBytesAsync(file))).ToLowerInvariant();
                    if (sum != parts[1]) bad.Add($"{line}: sha256 {sum}");
                }
            }
            return new GuestDiskCheck(code == 0, fsck, count, bad);
        }
        finally
        {
            System.IO.Directory.Delete(work, recursive: true);
        }
    }
}
