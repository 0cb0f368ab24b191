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
        var json = await BackingChainJsonAsync(path, ct);
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

    /// <summary>`info -U --backing-chain --output=json`: a JSON array, top first (fails when a backing file is missing).</summary>
    public static Task<string> BackingChainJsonAsync(string path, CancellationToken ct) =>
        RunAsync(ct, "info", "-U", "--backing-chain", "--output=json", path);

    /// <summary>`info -U --output=json` of one image alone (works when its backing file is missing).</summary>
    public static Task<string> ImageJsonAsync(string path, CancellationToken ct) => RunAsync(ct, "info", "-U", "--output=json", path);

    /// <summary>Offline commit of <paramref name="top"/> and every layer between it and <paramref name="baseImage"/> into that base; -d keeps the top's data.</summary>
    public static Task CommitIntoAsync(string top, string topFormat, string baseImage, CancellationToken ct) =>
        RunAsync(ct, "commit", "-q", "-d", "-f", topFormat, "-b", baseImage, top);

    /// <summary>
    /// Safe rebase: copies into <paramref name="image"/> what differs from the new backing file (null: none, the image becomes
    /// standalone), then rewrites its header. Re-running after an interruption is harmless (the header changes last).
    /// </summary>
    public static Task RebaseAsync(string image, string imageFormat, string? backingFile, string? backingFormat, CancellationToken ct) =>
        backingFile is null
            ? RunAsync(ct, "rebase", "-q", "-f", imageFormat, "-b", "", image)
            : RunAsync(ct, "rebase", "-q", "-f", imageFormat, "-b", backingFile, "-F", backingFormat ?? "qcow2", image);

    /// <summary>Header-only rebase (`rebase -u`): for when the data already is in the new backing file.</summary>
    public static Task RebaseUnsafeAsync(string image, string imageFormat, string backingFile, string backingFormat, CancellationToken ct) =>
        RunAsync(ct, "rebase", "-q", "-u", "-f", imageFormat, "-b", backingFile, "-F", backingFormat, image);

    /// <summary>
    /// Writes the image (and its chain) into <paramref name="target"/>; with <paramref name="keepBacking"/> only the top layer,
    /// on top of that backing file (`-B`, qcow2 targets only).
    /// </summary>
    public static Task ConvertAsync(string source, string sourceFormat, string target, string targetFormat, (string Path, string Format)? keepBacking, CancellationToken ct) =>
        keepBacking is { } b
            ? RunAsync(ct, "convert", "-q", "-f", sourceFormat, "-O", targetFormat, "-B", b.Path, "-F", b.Format, source, target)
            : RunAsync(ct, "convert", "-q", "-f", sourceFormat, "-O", targetFormat, source, target);

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
