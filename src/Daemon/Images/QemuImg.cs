using System.Buffers.Binary;
using System.Diagnostics;
using System.Text;
using System.Text.Json;
using Backupd.Daemon.Workflow;

namespace Backupd.Daemon.Images;

/// <summary>qemu-img failed or is missing; the message names the command and its stderr (or the package to install).</summary>
public sealed class QemuImgException : IOException
{
    public QemuImgException(string message) : base(message) { }
    public QemuImgException(string message, Exception inner) : base(message, inner) { }
    public QemuImgException() { }
}

/// <summary>
/// Every qemu-img operation backupd runs, as a child process with its arguments as a list (no shell; the
/// product never runs virsh, qemu-img is fine), plus the qcow2 header sniffing that needs no process.
/// The instance is the workflow's <see cref="IImageTool"/> (fakeable); restores use the static operations.
/// </summary>
public sealed class QemuImg : IImageTool
{
    public async Task<IReadOnlyList<ChainImage>> GetChainAsync(string path, CancellationToken ct)
    {
        var json = await OutputAsync(ct, "info", "-U", "--backing-chain", "--output=json", path);
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

    /// <summary>Rewrites the backing reference in the image header only (`rebase -u`): data is untouched.</summary>
    public static Task RebaseUnsafeAsync(string image, string backingFile, string backingFormat, CancellationToken ct) =>
        RunAsync(ct, "rebase", "-u", "-f", "qcow2", "-b", backingFile, "-F", backingFormat, image);

    /// <summary>Writes the whole chain under <paramref name="top"/> as one standalone image.</summary>
    public static Task ConvertAsync(string top, string topFormat, string target, string targetFormat, CancellationToken ct) =>
        RunAsync(ct, "convert", "-f", topFormat, "-O", targetFormat, top, target);

    /// <summary>`info -U --backing-chain --output=json`: a JSON array, top first (fails when a backing file is missing).</summary>
    public static Task<string> BackingChainJsonAsync(string path, CancellationToken ct) =>
        OutputAsync(ct, "info", "-U", "--backing-chain", "--output=json", path);

    /// <summary>`info -U --output=json` of one image alone (works when its backing file is missing).</summary>
    public static Task<string> ImageJsonAsync(string path, CancellationToken ct) => OutputAsync(ct, "info", "-U", "--output=json", path);

    /// <summary>`qemu-img map -U --output=json` of one qcow2 file: its guest extents and where they are stored (changed-block read plans).</summary>
    public static Task<string> MapJsonAsync(string path, CancellationToken ct) => OutputAsync(ct, "map", "-U", "-f", "qcow2", "--output=json", path);

    /// <summary>
    /// Removes every persistent dirty bitmap from a restored qcow2 image (`qemu-img bitmap --remove`, one per bitmap): the repository's
    /// copy carries the bitmaps the source had when it was read, and a checkpoint could otherwise trust one that no longer describes the
    /// file (docs/workflow.md, "Changed-block tracking"). Returns the names removed; nothing for other formats. The image must not be in use.
    /// </summary>
    public static async Task<IReadOnlyList<string>> RemoveBitmapsAsync(string image, string format, CancellationToken ct)
    {
        if (format != "qcow2") return [];
        var names = Storage.ChangedBlocks.BitmapCheck.Names(await OutputAsync(ct, "info", "-f", "qcow2", "--output=json", image));
        foreach (var name in names) await RunAsync(ct, "bitmap", "--remove", "-f", "qcow2", image, name);
        return names;
    }

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

    /// <summary>Header-only rebase (`rebase -u`) of an image of <paramref name="imageFormat"/>: for when the data already is in the new backing file.</summary>
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

    /// <summary>A new qcow2 overlay on <paramref name="backingFile"/> (drills, instant restores): writes go to it, the backing file is only read.</summary>
    public static Task CreateOverlayAsync(string overlay, string backingFile, string backingFormat, CancellationToken ct) =>
        RunAsync(ct, "create", "-q", "-f", "qcow2", "-b", backingFile, "-F", backingFormat, overlay);

    /// <summary>`qemu-img check -U` of an image: null when it is consistent, else what qemu-img reported.</summary>
    public static async Task<string?> CheckAsync(string image, string format, CancellationToken ct)
    {
        if (format != "qcow2") return null; // only qcow2 (and a few others) have metadata to check; raw has none
        var (code, stdout, stderr) = await TryRunAsync(ct, "check", "-U", "-f", format, image);
        return code == 0 ? null : $"qemu-img check {image} exited {code}: {(stdout + stderr).Trim()}";
    }

    /// <summary>True when the guest-visible contents are equal (`qemu-img compare`, exit 0 equal, 1 different).</summary>
    public static async Task<bool> CompareAsync(string a, string b, CancellationToken ct)
    {
        var (code, _, stderr) = await TryRunAsync(ct, "compare", "-U", a, b);
        return code switch
        {
            0 => true,
            1 => false,
            _ => throw new QemuImgException($"qemu-img compare {a} {b} failed: {stderr.Trim()}"),
        };
    }

    /// <summary>Runs qemu-img with <paramref name="args"/>; a non-zero exit throws <see cref="QemuImgException"/> with its stderr.</summary>
    public static Task RunAsync(CancellationToken ct, params string[] args) => OutputAsync(ct, args);

    private const uint Qcow2Magic = 0x514649FB; // "QFI\xfb"

    /// <summary>The qcow2 header version (2 or 3) or null when the file is not qcow2: only v3 images can hold persistent dirty bitmaps.</summary>
    public static int? Qcow2Version(string path)
    {
        using var fs = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.ReadWrite);
        Span<byte> header = stackalloc byte[8];
        if (fs.Read(header) < 8 || BinaryPrimitives.ReadUInt32BigEndian(header) != Qcow2Magic) return null;
        return (int)BinaryPrimitives.ReadUInt32BigEndian(header[4..]);
    }

    /// <summary>qcow2 (by its magic, with the backing file name from the header) or raw, read from the file's first bytes.</summary>
    public static (string Format, string? BackingFile) DetectFormat(string path)
    {
        using var fs = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.ReadWrite);
        Span<byte> header = stackalloc byte[20];
        if (fs.Read(header) < 20 || BinaryPrimitives.ReadUInt32BigEndian(header) != Qcow2Magic)
        {
            return ("raw", null);
        }
        var backingOffset = BinaryPrimitives.ReadInt64BigEndian(header[8..]);
        var backingSize = BinaryPrimitives.ReadInt32BigEndian(header[16..]);
        if (backingOffset <= 0 || backingSize is <= 0 or > 4096)
        {
            return ("qcow2", null);
        }
        var name = new byte[backingSize];
        fs.Position = backingOffset;
        fs.ReadExactly(name);
        return ("qcow2", Encoding.UTF8.GetString(name));
    }

    private static async Task<string> OutputAsync(CancellationToken ct, params string[] args)
    {
        var (code, stdout, stderr) = await TryRunAsync(ct, args);
        return code == 0 ? stdout : throw new QemuImgException($"qemu-img {string.Join(' ', args)} failed (exit {code}): {stderr.Trim()}");
    }

    private static async Task<(int Code, string Stdout, string Stderr)> TryRunAsync(CancellationToken ct, params string[] args)
    {
        var info = new ProcessStartInfo("qemu-img") { RedirectStandardOutput = true, RedirectStandardError = true, StandardErrorEncoding = Encoding.UTF8 };
        foreach (var a in args) info.ArgumentList.Add(a);
        Process? started;
        try { started = Process.Start(info); }
        catch (System.ComponentModel.Win32Exception e) { throw new QemuImgException($"cannot run qemu-img ({e.Message}): apt-get install -y qemu-utils", e); }
        using var process = started ?? throw new QemuImgException("cannot run qemu-img: apt-get install -y qemu-utils");
        var stdout = process.StandardOutput.ReadToEndAsync(ct);
        var stderr = process.StandardError.ReadToEndAsync(ct);
        try { await process.WaitForExitAsync(ct); }
        catch (OperationCanceledException) { process.Kill(); throw; }
        return (process.ExitCode, await stdout, await stderr);
    }
}
