using System.Text.Json;

namespace Backupd.Storage.ChangedBlocks;

/// <summary>What <see cref="BitmapCheck.Validate"/> found: <see cref="Reason"/> is null when the bitmap can drive a read plan.</summary>
public sealed record BitmapValidation(string? Reason, long VirtualSize, long Granularity)
{
    public bool Usable => Reason is null;
}

/// <summary>
/// Checks, from <c>qemu-img info -U --output=json</c> of the frozen base, that bitmap NAME can be trusted to list every
/// guest write since it was created: a qcow2 file (not corrupt, no external data file, whose host offsets would be in
/// another file), the bitmap present, enabled (<c>auto</c>: it records), not <c>in-use</c> (left so by a QEMU that did
/// not close the image: inconsistent), and a granularity that is a power of two no larger than the block size, so
/// every block covers whole bitmap granules.
/// </summary>
public static class BitmapCheck
{
    public static BitmapValidation Validate(string infoJson, string bitmapName, int blockSize)
    {
        ArgumentNullException.ThrowIfNull(infoJson);
        ArgumentException.ThrowIfNullOrEmpty(bitmapName);
        JsonDocument doc;
        try
        {
            doc = JsonDocument.Parse(infoJson);
        }
        catch (JsonException e)
        {
            return new BitmapValidation($"qemu-img info output is not JSON: {e.Message}", 0, 0);
        }
        using (doc)
        {
            var root = doc.RootElement;
            if (root.ValueKind != JsonValueKind.Object)
            {
                return new BitmapValidation("qemu-img info output is not a JSON object", 0, 0);
            }
            var size = root.TryGetProperty("virtual-size", out var vs) && vs.ValueKind == JsonValueKind.Number && vs.TryGetInt64(out var v) ? v : -1;
            var reason = Check(root, bitmapName, blockSize, size, out var granularity);
            return new BitmapValidation(reason, Math.Max(0, size), granularity);
        }
    }

    /// <summary>
    /// The names of every persistent bitmap <c>qemu-img info --output=json</c> lists (none for raw, qcow2 v2, or unparsable output):
    /// a restore removes them all, since the restored file is no longer the one they described.
    /// </summary>
    public static IReadOnlyList<string> Names(string infoJson)
    {
        ArgumentNullException.ThrowIfNull(infoJson);
        try
        {
            using var doc = JsonDocument.Parse(infoJson);
            if (doc.RootElement.ValueKind != JsonValueKind.Object
                || !doc.RootElement.TryGetProperty("format-specific", out var fs) || !fs.TryGetProperty("data", out var data) || data.ValueKind != JsonValueKind.Object
                || !data.TryGetProperty("bitmaps", out var bitmaps) || bitmaps.ValueKind != JsonValueKind.Array)
            {
                return [];
            }
            return [.. bitmaps.EnumerateArray().Select(b => b.TryGetProperty("name", out var n) ? n.GetString() : null).OfType<string>()];
        }
        catch (JsonException)
        {
            return [];
        }
    }

    private static string? Check(JsonElement root, string name, int blockSize, long size, out long granularity)
    {
        granularity = 0;
        var format = root.TryGetProperty("format", out var f) ? f.GetString() : null;
        if (format != "qcow2")
        {
            return $"the image is {format ?? "of unknown format"}, not qcow2: it carries no dirty bitmaps";
        }
        if (size <= 0)
        {
            return "qemu-img info reports no virtual size";
        }
        if (!root.TryGetProperty("format-specific", out var fs) || !fs.TryGetProperty("data", out var data) || data.ValueKind != JsonValueKind.Object)
        {
            return "qemu-img info reports no qcow2 details";
        }
        if (data.TryGetProperty("corrupt", out var corrupt) && corrupt.ValueKind == JsonValueKind.True)
        {
            return "the qcow2 image is marked corrupt";
        }
        if (data.TryGetProperty("data-file", out _))
        {
            return "the qcow2 image keeps its data in an external data file";
        }
        if (!data.TryGetProperty("bitmaps", out var bitmaps) || bitmaps.ValueKind != JsonValueKind.Array)
        {
            return $"bitmap '{name}' is missing (the image has no bitmaps)";
        }
        foreach (var b in bitmaps.EnumerateArray())
        {
            if (!b.TryGetProperty("name", out var n) || n.GetString() != name)
            {
                continue;
            }
            var flags = b.TryGetProperty("flags", out var fl) && fl.ValueKind == JsonValueKind.Array
                ? fl.EnumerateArray().Select(x => x.GetString()).ToList()
                : [];
            if (flags.Contains("in-use"))
            {
                return $"bitmap '{name}' is in-use: QEMU did not close the image cleanly, the bitmap is inconsistent";
            }
            if (!flags.Contains("auto"))
            {
                return $"bitmap '{name}' is disabled (no 'auto' flag): it did not record every write";
            }
            granularity = b.TryGetProperty("granularity", out var g) && g.ValueKind == JsonValueKind.Number && g.TryGetInt64(out var gv) ? gv : 0;
            if (granularity <= 0 || (granularity & (granularity - 1)) != 0)
            {
                return $"bitmap '{name}' has granularity {granularity}, not a power of two";
            }
            if (granularity > blockSize)
            {
                return $"bitmap '{name}' has granularity {granularity}, coarser than the repository block size {blockSize}";
            }
            return null;
        }
        return $"bitmap '{name}' is missing";
    }
}
