namespace Backupd.Policies.Loading;

/// <summary>"Did you mean" for misspelt keys: the closest known key within a small edit distance.</summary>
public static class KeySuggestions
{
    public static string? Suggest(string key, IEnumerable<string> known)
    {
        var normalized = key.Replace('_', '-').ToLowerInvariant();
        return known.Select(k => (k, d: EditDistance(k, normalized)))
            .Where(x => x.d <= Math.Max(2, x.k.Length / 3))
            .OrderBy(x => x.d).Select(x => x.k).FirstOrDefault();
    }

    /// <summary>Levenshtein distance; keys longer than 200 characters are never close to anything.</summary>
    public static int EditDistance(string a, string b)
    {
        if (b.Length > 200) return int.MaxValue;
        var prev = new int[b.Length + 1];
        var cur = new int[b.Length + 1];
        for (var j = 0; j <= b.Length; j++) prev[j] = j;
        for (var i = 1; i <= a.Length; i++)
        {
            cur[0] = i;
            for (var j = 1; j <= b.Length; j++)
                cur[j] = Math.Min(Math.Min(cur[j - 1] + 1, prev[j] + 1), prev[j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1));
            (prev, cur) = (cur, prev);
        }
        return prev[b.Length];
    }
}
