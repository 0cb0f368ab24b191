using System.Diagnostics;
using System.Text.Json;

namespace Backupd.Daemon.Workflow;

/// <summary>One image of a chain as qemu-img sees it. <see cref="BackingFile"/> is absolute.</summary>
public sealed record ChainImage(string Path, string Format, string? BackingFile, long VirtualSize);

/// <summary>The few qemu-img operations the workflow needs (fakeable).</summary>
public interface IImageTool
{
    /// <summary>The image and every backing file below it, top first. Works on images in use (-U).</summary>
    Task<IReadOnlyList<ChainImage>> GetChainAsync(string path, CancellationToken ct);

    /// <summary>Offline commit of <paramref name="overlay"/> into its backing file (the domain must not be running on it).</summary>
    Task CommitAsync(string overlay, CancellationToken ct);
}

/// <summary>qemu-img as a child process (the product never runs virsh; qemu-img is fine).</summary>
public sealed class QemuImg : IImageTool
{
    public async Task<IReadOnlyList<ChainImage>> GetChainAsync(string path, CancellationToken ct)
    {
        var json = await RunAsync(ct, "info", "-U", "--backing-chain", "--output=json", path);
        using var doc = JsonDocument.Parse(json);
        var chain = new List<ChainImage>();
        foreach (var image in doc.RootElement.EnumerateArray())
        {
            var file = image.GetProperty("filename").GetString()!;
            chain.Add(new ChainImage(
                Path.GetFullPath(file),
                image.GetProperty("format").GetString()!,
                image.TryGetProperty("full-backing-filename", out var b) ? b.GetString() : null,
                image.GetProperty("virtual-size").GetInt64()));
        }
        return chain;
    }

    public Task CommitAsync(string overlay, CancellationToken ct) => RunAsync(ct, "commit", "-q", overlay);

    private static async Task<string> RunAsync(CancellationToken ct, params string[] args)
    {
        var psi = new ProcessStartInfo("qemu-img") { RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (var a in args) psi.ArgumentList.Add(a);
        Process? started;
        try { started = Process.Start(psi); }
        catch (System.ComponentModel.Win32Exception e) { throw new IOException($"cannot run qemu-img ({e.Message}): install qemu-utils", e); }
        using var process = started ?? throw new IOException("cannot run qemu-img: install qemu-utils");
        var stdout = process.StandardOutput.ReadToEndAsync(ct);
        var stderr = process.StandardError.ReadToEndAsync(ct);
        await process.WaitForExitAsync(ct);
        if (process.ExitCode != 0)
            throw new IOException($"qemu-img {string.Join(' ', args)} failed (exit {process.ExitCode}): {(await stderr).Trim()}");
        return await stdout;
    }
}
