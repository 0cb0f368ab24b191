using Backupd.Policies.Model;
using Backupd.Policies.Retention;
using Backupd.Policies.Yaml;

namespace Backupd.Policies.Loading;

/// <summary>`copies:` (issue 15): a list of copy targets, each with its key, retention, bandwidth and retries.</summary>
internal sealed partial class PolicyReader
{
    internal static readonly string[] CopyKeys = ["to", "key", "retention", "bandwidth", "retries", "retry-delay"];

    private List<CopyDestination> Copies(YNode node)
    {
        var result = new List<CopyDestination>();
        if (node is not YSequence sequence)
        {
            errors.Add(node, $"'copies' expects a list of copy targets (each a mapping with 'to:'), got {Describe(node)}");
            return result;
        }
        var seen = new Dictionary<string, int>(StringComparer.Ordinal);
        foreach (var item in sequence.Items)
        {
            if (Copy(item) is not { } copy) continue;
            if (seen.TryGetValue(copy.Target, out var line))
            {
                errors.Add(item, $"'copies' names target '{copy.Target}' twice (first at line {line})");
                continue;
            }
            seen[copy.Target] = copy.Source.Line;
            result.Add(copy);
        }
        return result;
    }

    private CopyDestination? Copy(YNode node)
    {
        if (node is not YMapping mapping)
        {
            errors.Add(node, $"'copies' entry expects a mapping with 'to:' (a directory or ssh://[user@]host[:port]/path), got {Describe(node)}");
            return null;
        }
        var before = errors.Count;
        var keys = Keys(mapping, CopyKeys, "a 'copies' entry");
        string? target = null;
        if (!keys.TryGetValue("to", out var toNode))
            errors.Add(mapping, "'copies' entry is missing required key 'to' (a directory such as /mnt/usb/copies, or ssh://user@host/srv/copies)");
        else
            target = CopyTarget(toNode);
        string? key = null;
        if (keys.TryGetValue("key", out var keyNode) && String(keyNode, "copies.key", "the offsite key file made by `backupd key create`") is { } k)
        {
            key = Path.GetFullPath(k, baseDirectory);
        }
        var retention = keys.TryGetValue("retention", out var retentionNode) ? Retention(retentionNode) : RetentionRules.KeepAll;
        long? bandwidth = null;
        if (keys.TryGetValue("bandwidth", out var rateNode))
        {
            if (rateNode is YScalar s && Units.TryParseRate(s.Value, out var r) && r >= 1024 * 1024) bandwidth = r;
            else errors.Add(rateNode, $"'copies.bandwidth' expects a rate of at least 1MiB/s like 10MiB/s, got {Describe(rateNode)}");
        }
        var retries = keys.TryGetValue("retries", out var retriesNode)
            ? Integer(retriesNode, "copies.retries", 0, CopyDestination.MaxRetries) ?? 0 : CopyDestination.DefaultRetries;
        var delay = CopyDestination.DefaultRetryDelay;
        if (keys.TryGetValue("retry-delay", out var delayNode))
        {
            if (delayNode is YScalar d && Units.TryParseDuration(d.Value, out var t) && t > TimeSpan.Zero && t <= TimeSpan.FromHours(6)) delay = t;
            else errors.Add(delayNode, $"'copies.retry-delay' expects a duration from 1s to 6h like 30s or 5m (doubled after each failed attempt), got {Describe(delayNode)}");
        }
        if (errors.Count > before || target is null) return null;
        return new CopyDestination(target, key, retention ?? RetentionRules.KeepAll, bandwidth, retries, delay, new SourcePosition(path, mapping.Line, mapping.Column));
    }

    /// <summary>What `backupd copy --to` accepts: an absolute directory, or ssh://[user@]host[:port]/absolute/path.</summary>
    private string? CopyTarget(YNode node)
    {
        var text = String(node, "copies.to", "a directory such as /mnt/usb/copies, or ssh://user@host/srv/copies");
        if (text is null) return null;
        string? problem = null;
        if (text.StartsWith("ssh://", StringComparison.Ordinal))
        {
            var rest = text["ssh://".Length..];
            var slash = rest.IndexOf('/', StringComparison.Ordinal);
            if (slash <= 0 || slash == rest.Length - 1) problem = "expected ssh://[user@]host[:port]/absolute/path";
            else if (rest.Any(c => char.IsWhiteSpace(c) || char.IsControl(c) || c == '\'')) problem = "it may not contain spaces, quotes or control characters";
        }
        else if (text.Contains("://", StringComparison.Ordinal)) problem = "only a directory or ssh://[user@]host[:port]/path is supported";
        else if (!Path.IsPathRooted(text)) problem = "a directory must be an absolute path";
        else if (text.Contains('\0', StringComparison.Ordinal)) problem = "it contains a NUL character";
        if (problem is null) return text.StartsWith("ssh://", StringComparison.Ordinal) ? text : Path.GetFullPath(text).TrimEnd('/');
        errors.Add(node, $"'copies.to' '{text}': {problem}");
        return null;
    }
}
