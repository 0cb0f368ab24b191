using Backupd.Daemon.Images;
using System.Text.Json;
using Backupd.Daemon.Workflow;

namespace Backupd.Daemon.Chains;

/// <summary>
/// A disk's chain as qemu-img sees it (`info --backing-chain -U --output=json`: works while QEMU holds the images).
/// When a backing file is missing that call fails; the chain is then walked one image at a time, so the missing
/// layer is shown as such instead of the whole disk being an error.
/// </summary>
public static class ImageChainReader
{
    public static async Task<IReadOnlyList<ChainLayer>> ReadAsync(string activePath, CancellationToken ct)
    {
        try
        {
            using var doc = JsonDocument.Parse(await QemuImg.BackingChainJsonAsync(activePath, ct));
            return [.. doc.RootElement.EnumerateArray().Select((e, i) => Parse(e, i))];
        }
        catch (IOException)
        {
            return await WalkAsync(activePath, ct);
        }
    }

    private static async Task<IReadOnlyList<ChainLayer>> WalkAsync(string activePath, CancellationToken ct)
    {
        var layers = new List<ChainLayer>();
        string? path = activePath;
        while (path is not null && layers.Count < 256) // a loop in the headers would never end
        {
            if (!File.Exists(path))
            {
                layers.Add(new ChainLayer(layers.Count, path, null, null, null, null, null, null, null, [], Missing: true));
                break;
            }
            using var doc = JsonDocument.Parse(await QemuImg.ImageJsonAsync(path, ct));
            var layer = Parse(doc.RootElement, layers.Count);
            layers.Add(layer);
            path = layer.BackingFile;
        }
        return layers;
    }

    /// <summary>One element of qemu-img's JSON. Paths are made absolute (qemu-img prints them as opened).</summary>
    internal static ChainLayer Parse(JsonElement image, int index)
    {
        var path = Path.GetFullPath(image.GetProperty("filename").GetString()!);
        string? compat = null;
        var inUse = new List<string>();
        if (image.TryGetProperty("format-specific", out var specific) && specific.TryGetProperty("data", out var data))
        {
            if (data.TryGetProperty("compat", out var c)) compat = c.GetString();
            if (data.TryGetProperty("bitmaps", out var bitmaps))
            {
                foreach (var b in bitmaps.EnumerateArray())
                {
                    var flags = b.TryGetProperty("flags", out var f) ? f.EnumerateArray().Select(x => x.GetString()) : [];
                    if (flags.Contains("in-use")) inUse.Add(b.GetProperty("name").GetString() ?? "?");
                }
            }
        }
        long? fileSize = File.Exists(path) ? new FileInfo(path).Length : null;
        return new ChainLayer(index, path,
            Format: image.GetProperty("format").GetString(),
            VirtualSize: image.TryGetProperty("virtual-size", out var v) ? v.GetInt64() : null,
            FileSize: fileSize,
            AllocatedBytes: image.TryGetProperty("actual-size", out var a) ? a.GetInt64() : null,
            BackingFile: image.TryGetProperty("full-backing-filename", out var fb) ? fb.GetString()
                : image.TryGetProperty("backing-filename", out var bf) ? ResolveBacking(path, bf.GetString()) : null,
            BackingFormat: image.TryGetProperty("backing-filename-format", out var bff) ? bff.GetString() : null,
            Compat: compat,
            BitmapsInUse: inUse,
            Missing: false);
    }

    /// <summary>A relative backing name is relative to the directory of the image that names it.</summary>
    private static string? ResolveBacking(string imagePath, string? backing) =>
        backing is null ? null : Path.GetFullPath(backing, Path.GetDirectoryName(imagePath)!);
}
