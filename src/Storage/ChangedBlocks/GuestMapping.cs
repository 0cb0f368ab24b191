using System.Text.Json;

namespace Backupd.Storage.ChangedBlocks;

/// <summary>
/// A data extent of a qcow2 file as <c>qemu-img map -U --output=json</c> reports it at depth 0: guest bytes
/// [<see cref="GuestOffset"/>, +<see cref="Length"/>) are stored in the file at <see cref="HostOffset"/>.
/// </summary>
public sealed record GuestMapping(long GuestOffset, long Length, long HostOffset);

/// <summary>Parses <c>qemu-img map --output=json</c>: only depth-0 extents with data and a host offset are mappings.</summary>
public static class ImageMap
{
    /// <summary>
    /// The depth-0 data extents, in file order of the guest. Compressed extents (no usable host offset) and extents of
    /// backing files are left out: their host blocks are then read, which is always safe.
    /// Throws <see cref="FormatException"/> naming the entry when the output is not what qemu-img writes.
    /// </summary>
    public static IReadOnlyList<GuestMapping> Parse(string json)
    {
        ArgumentNullException.ThrowIfNull(json);
        using var doc = ParseDocument(json);
        if (doc.RootElement.ValueKind != JsonValueKind.Array)
        {
            throw new FormatException("qemu-img map output: expected a JSON array of extents");
        }
        var result = new List<GuestMapping>();
        var i = 0;
        foreach (var e in doc.RootElement.EnumerateArray())
        {
            var start = Number(e, "start", i);
            var length = Number(e, "length", i);
            var depth = Number(e, "depth", i);
            var data = e.TryGetProperty("data", out var d) && d.ValueKind == JsonValueKind.True;
            var compressed = e.TryGetProperty("compressed", out var c) && c.ValueKind == JsonValueKind.True;
            if (start < 0 || length < 0)
            {
                throw new FormatException($"qemu-img map output: extent {i} has a negative start or length");
            }
            if (depth == 0 && data && !compressed && e.TryGetProperty("offset", out var o) && o.ValueKind == JsonValueKind.Number && length > 0)
            {
                var host = o.GetInt64();
                if (host < 0)
                {
                    throw new FormatException($"qemu-img map output: extent {i} has a negative offset");
                }
                result.Add(new GuestMapping(start, length, host));
            }
            i++;
        }
        return result;
    }

    private static JsonDocument ParseDocument(string json)
    {
        try
        {
            return JsonDocument.Parse(json);
        }
        catch (JsonException e)
        {
            throw new FormatException($"qemu-img map output is not JSON: {e.Message}", e);
        }
    }

    private static long Number(JsonElement e, string name, int index) =>
        e.ValueKind == JsonValueKind.Object && e.TryGetProperty(name, out var v) && v.ValueKind == JsonValueKind.Number && v.TryGetInt64(out var n)
            ? n
            : throw new FormatException($"qemu-img map output: extent {index} has no integer '{name}'");
}
