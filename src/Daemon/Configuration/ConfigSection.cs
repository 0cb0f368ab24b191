using Backupd.Policies.Loading;
using Backupd.Policies.Yaml;

namespace Backupd.Daemon.Configuration;

/// <summary>
/// Reads one nested mapping of the daemon configuration (`http:`, a `notify:` target) with the loader's
/// rules: unknown keys get a did-you-mean, duplicates and non-scalar values are errors with file:line:column.
/// </summary>
internal sealed class ConfigSection(string path, string where, YMapping mapping, string[] known, List<string> errors)
{
    private readonly Dictionary<string, YScalar> _values = Index(path, where, mapping, known, errors);

    public string Path => path;
    public List<string> Errors => errors;

    public bool Has(string key) => _values.ContainsKey(key);

    public string? Text(string key) => _values.TryGetValue(key, out var v) && !v.IsNull ? v.Value : null;

    public YScalar? Node(string key) => _values.GetValueOrDefault(key);

    public void Error(string key, string message) => errors.Add($"{At(_values.TryGetValue(key, out var v) ? v : mapping)}: {message}");

    public string At(YNode node) => $"{path}:{node.Line}:{node.Column}";

    /// <summary>A path value resolved against the configuration file's directory.</summary>
    public string? FilePath(string key) => Text(key) is { Length: > 0 } v ? System.IO.Path.GetFullPath(v, System.IO.Path.GetDirectoryName(path)!) : null;

    private static Dictionary<string, YScalar> Index(string path, string where, YMapping mapping, string[] known, List<string> errors)
    {
        var result = new Dictionary<string, YScalar>(StringComparer.Ordinal);
        foreach (var (key, value) in mapping.Entries)
        {
            if (!known.Contains(key.Value))
            {
                var hint = KeySuggestions.Suggest(key.Value, known);
                errors.Add($"{path}:{key.Line}:{key.Column}: unknown key '{key.Value}' in {where}{(hint is null ? "" : $" (did you mean '{hint}'?)")}; known keys: {string.Join(", ", known)}");
            }
            else if (result.ContainsKey(key.Value))
                errors.Add($"{path}:{key.Line}:{key.Column}: '{key.Value}' is given twice in {where}");
            else if (value is YScalar scalar)
                result[key.Value] = scalar;
            else if (value is YSequence sequence && sequence.Items.All(i => i is YScalar))
                // A list of words (e.g. events: [failure, damage]) is kept as one comma-separated scalar.
                result[key.Value] = new YScalar(string.Join(",", sequence.Items.Cast<YScalar>().Select(i => i.Value)), false, sequence.Line, sequence.Column);
            else
                errors.Add($"{path}:{value.Line}:{value.Column}: '{key.Value}' in {where} expects a single value");
        }
        return result;
    }
}
