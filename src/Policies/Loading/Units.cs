using System.Globalization;

namespace Backupd.Policies.Loading;

/// <summary>Durations (<c>90s</c>, <c>15m</c>, <c>1h30m</c>, <c>2d</c>) and byte sizes (<c>64KiB</c>, <c>1MiB</c>, <c>100M</c>, a bare number is bytes).</summary>
public static class Units
{
    public static bool TryParseDuration(string text, out TimeSpan value)
    {
        value = TimeSpan.Zero;
        text = text.Trim();
        if (text.Length == 0) return false;
        var i = 0;
        var lastUnitRank = int.MaxValue;
        while (i < text.Length)
        {
            var start = i;
            while (i < text.Length && char.IsAsciiDigit(text[i])) i++;
            if (i == start || i - start > 9) return false;
            var n = long.Parse(text.AsSpan(start, i - start), NumberStyles.None, CultureInfo.InvariantCulture);
            var unit = i < text.Length ? text[i++] : (start == 0 ? 's' : '\0');
            var rank = unit switch { 'd' => 4, 'h' => 3, 'm' => 2, 's' => 1, _ => 0 };
            if (rank == 0 || rank >= lastUnitRank) return false; // units in falling order, each once
            lastUnitRank = rank;
            value += rank switch { 4 => TimeSpan.FromDays(n), 3 => TimeSpan.FromHours(n), 2 => TimeSpan.FromMinutes(n), _ => TimeSpan.FromSeconds(n) };
        }
        return true;
    }

    public static bool TryParseSize(string text, out long bytes)
    {
        bytes = 0;
        text = text.Trim();
        var i = 0;
        while (i < text.Length && char.IsAsciiDigit(text[i])) i++;
        if (i == 0 || i > 15) return false;
        var n = long.Parse(text.AsSpan(0, i), NumberStyles.None, CultureInfo.InvariantCulture);
        long? factor = text[i..].Trim() switch
        {
            "" or "B" => 1,
            "K" or "KiB" or "k" => 1L << 10,
            "M" or "MiB" => 1L << 20,
            "G" or "GiB" => 1L << 30,
            "T" or "TiB" => 1L << 40,
            _ => null,
        };
        if (factor is null || n > long.MaxValue / factor.Value) return false;
        bytes = n * factor.Value;
        return true;
    }

    /// <summary>A rate: a size optionally followed by <c>/s</c>.</summary>
    public static bool TryParseRate(string text, out long bytesPerSecond)
    {
        text = text.Trim();
        if (text.EndsWith("/s", StringComparison.Ordinal)) text = text[..^2];
        return TryParseSize(text, out bytesPerSecond);
    }

    public static string FormatSize(long bytes) =>
        bytes % (1L << 30) == 0 && bytes > 0 ? $"{bytes >> 30}GiB" :
        bytes % (1L << 20) == 0 && bytes > 0 ? $"{bytes >> 20}MiB" :
        bytes % (1L << 10) == 0 && bytes > 0 ? $"{bytes >> 10}KiB" : $"{bytes}B";
}
