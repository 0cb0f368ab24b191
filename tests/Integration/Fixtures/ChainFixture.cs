using System.Collections.Concurrent;
using System.Security.Cryptography;

namespace Backupd.Integration.Fixtures;

/// <summary>A guest write that was acknowledged: where, how long, which byte.</summary>
public sealed record GuestWrite(long Offset, long Length, byte Pattern);

/// <summary>Chains for tests: external snapshots as an admin makes them, and a guest that keeps writing meanwhile.</summary>
public static class ChainFixture
{
    /// <summary>`virsh snapshot-create-as --disk-only --atomic --no-metadata` (the talk's recipe): a new active layer NAME.qcow2.</summary>
    public static async Task<string> SnapshotAsync(TestVm vm, string target, string name)
    {
        var file = Path.Combine(vm.Directory, $"{name}.qcow2");
        await Tools.Virsh("snapshot-create-as", "--domain", vm.Name, name, "--diskspec", $"{target},file={file}", "--disk-only", "--atomic", "--no-metadata");
        return file;
    }

    /// <summary>
    /// Builds [base] &lt;- [sn1] &lt;- [sn2] &lt;- [cur] on a running VM, each layer with 2 MiB of its own data at its own offset
    /// (so every layer matters to the guest view). Returns the writes, base's first.
    /// </summary>
    public static async Task<List<GuestWrite>> BuildFourLayersAsync(TestVm vm, string target)
    {
        var writes = new List<GuestWrite> { new(0, TestVm.MiB, 0x11) }; // the fixture's fill, in the base
        var offset = 4 * TestVm.MiB;
        byte pattern = 0x21;
        foreach (var name in new[] { "sn1", "sn2", "cur" })
        {
            await SnapshotAsync(vm, target, name);
            await vm.WriteAsGuestAsync(target, offset, pattern, 2 * TestVm.MiB);
            writes.Add(new GuestWrite(offset, 2 * TestVm.MiB, pattern));
            offset += 4 * TestVm.MiB;
            pattern += 0x10;
        }
        return writes;
    }

    /// <summary>Checks every write through the running guest's block layer; returns the ones that do not read back.</summary>
    public static async Task<List<GuestWrite>> MissingInGuestAsync(TestVm vm, string target, IEnumerable<GuestWrite> writes)
    {
        var missing = new List<GuestWrite>();
        foreach (var w in writes)
            if (!await vm.GuestReadMatchesAsync(target, w.Offset, w.Length, w.Pattern)) missing.Add(w);
        return missing;
    }

    /// <summary>Checks every write in an image file (and its chain); returns the ones that do not read back.</summary>
    public static async Task<List<GuestWrite>> MissingInImageAsync(string path, string format, IEnumerable<GuestWrite> writes)
    {
        var missing = new List<GuestWrite>();
        foreach (var w in writes)
            if (!await TestVm.ImageMatchesAsync(path, format, w.Offset, w.Length, w.Pattern)) missing.Add(w);
        return missing;
    }

    public static string Sha256(string path)
    {
        using var stream = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.ReadWrite);
        return Convert.ToHexString(SHA256.HashData(stream));
    }

    /// <summary>Images in the chain below <paramref name="path"/> (qemu-img), the file itself included.</summary>
    public static async Task<int> DepthAsync(string path)
    {
        var json = await Tools.RunAsync("qemu-img", "info", "-U", "--backing-chain", "--output=json", path);
        return System.Text.Json.JsonDocument.Parse(json).RootElement.GetArrayLength();
    }
}

/// <summary>
/// The guest writing in a loop (64 KiB pieces cycling through 16 MiB from <paramref name="start"/>, patterns changing)
/// until stopped; <see cref="Writes"/> holds every acknowledged write with the time it completed.
/// </summary>
public sealed class GuestWriter(TestVm vm, string target, long start) : IAsyncDisposable
{
    private static readonly TimeSpan PaceDelay = TimeSpan.FromMilliseconds(150); // 64 KiB per >= 150 ms: under 430 KiB/s
    private readonly CancellationTokenSource stop = new();
    private Task? loop;
    public ConcurrentQueue<(GuestWrite Write, DateTime At)> Writes { get; } = new();

    public GuestWriter Start()
    {
        loop = Task.Run(async () =>
        {
            for (var i = 0; !stop.IsCancellationRequested; i++)
            {
                // Round a 16 MiB window (a slow job must not write past the disk's end); the last write per offset is what counts.
                var w = new GuestWrite(start + i % 256 * 64 * 1024, 64 * 1024, (byte)(0x80 + i % 120));
                await vm.WriteAsGuestAsync(target, w.Offset, w.Pattern, w.Length);
                Writes.Enqueue((w, DateTime.UtcNow));
                // Paced below the jobs' 1 MiB/s: a mirror or active commit whose guest dirties faster than its bandwidth
                // never converges to READY (on an idle machine the monitor round trip alone allows ~2 MiB/s).
                await Task.Delay(PaceDelay, CancellationToken.None);
            }
        });
        return this;
    }

    /// <summary>Writes acknowledged between the two instants.</summary>
    public int CountBetween(DateTime from, DateTime to) => Writes.Count(w => w.At >= from && w.At <= to);

    public async Task<List<GuestWrite>> StopAsync()
    {
        await stop.CancelAsync();
        if (loop is not null) await loop;
        return [.. Writes.Select(w => w.Write).GroupBy(w => w.Offset).Select(g => g.Last())];
    }

    public async ValueTask DisposeAsync()
    {
        await stop.CancelAsync();
        try { if (loop is not null) await loop; }
        catch (InvalidOperationException) { } // the VM went away first
        stop.Dispose();
    }
}
