using System.Globalization;
using Backupd.Policies.Loading;
using YamlDotNet.Core;
using YamlDotNet.RepresentationModel;

namespace Backupd.Daemon.Configuration;

/// <summary>
/// Reads the daemon configuration (a flat YAML mapping). Reports every problem at once with
/// file:line:column, rejects unknown keys, and resolves relative paths against the file's directory.
/// </summary>
public static class ConfigLoader
{
    public const string EnvironmentVariable = "BACKUPD_CONFIG";
    public const string DefaultPath = "/etc/backupd/backupd.yaml";

    /// <summary>systemd LoadCredential= name for the catalog connection string.</summary>
    public const string CatalogCredentialName = "catalog-connection";

    private static readonly string[] KnownKeys =
    [
        "libvirt-uri", "catalog-connection", "catalog-connection-file", "state-directory",
        "scratch-directory", "policies-directory", "max-parallel", "misfire-grace",
    ];

    public static DaemonConfig Load(string? explicitPath)
    {
        var path = explicitPath ?? Environment.GetEnvironmentVariable(EnvironmentVariable) ?? DefaultPath;
        path = Path.GetFullPath(path);
        if (!File.Exists(path))
            throw new ConfigException($"{path}: configuration file not found (set --config or ${EnvironmentVariable})");
        string text;
        try { text = File.ReadAllText(path); }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        { throw new ConfigException($"{path}: cannot read: {e.Message}", e); }
        return Parse(text, path);
    }

    public static DaemonConfig Parse(string text, string path) =>
        Parse(text, path, Environment.GetEnvironmentVariable("CREDENTIALS_DIRECTORY"));

    /// <summary><see cref="Parse(string, string)"/> with systemd's credentials directory given (null: none).</summary>
    internal static DaemonConfig Parse(string text, string path, string? credentialsDirectory)
    {
        var errors = new List<string>();
        var values = new Dictionary<string, (string Value, Mark Start)>();
        var stream = new YamlStream();
        try { stream.Load(new StringReader(text)); }
        catch (YamlException e)
        {
            throw new ConfigException($"{path}:{e.Start.Line}:{e.Start.Column}: not valid YAML: {e.InnerException?.Message ?? e.Message}", e);
        }
        if (stream.Documents.Count == 0 || stream.Documents[0].RootNode is not YamlMappingNode root)
            throw new ConfigException($"{path}:1:1: expected a mapping of configuration keys (e.g. 'state-directory: /var/lib/backupd')");

        foreach (var (keyNode, valueNode) in root.Children)
        {
            var key = (keyNode as YamlScalarNode)?.Value ?? "";
            if (!KnownKeys.Contains(key))
            {
                var hint = Suggest(key);
                errors.Add($"{At(path, keyNode.Start)}: unknown key '{key}'{(hint is null ? "" : $" (did you mean '{hint}'?)")}; known keys: {string.Join(", ", KnownKeys)}");
                continue;
            }
            if (valueNode is not YamlScalarNode scalar)
            {
                errors.Add($"{At(path, valueNode.Start)}: '{key}' expects a single value, not a list or mapping");
                continue;
            }
            if (values.ContainsKey(key))
            {
                errors.Add($"{At(path, keyNode.Start)}: '{key}' is given twice");
                continue;
            }
            values[key] = (scalar.Value ?? "", scalar.Start);
        }

        var baseDir = Path.GetDirectoryName(path)!;
        string? PathValue(string key, bool required)
        {
            if (!values.TryGetValue(key, out var v) || v.Value.Length == 0)
            {
                if (required) errors.Add($"{path}: missing required key '{key}' (an absolute or relative directory path)");
                return null;
            }
            return Path.GetFullPath(v.Value, baseDir);
        }
        int IntValue(string key, int fallback, int min, int max)
        {
            if (!values.TryGetValue(key, out var v)) return fallback;
            if (int.TryParse(v.Value, NumberStyles.None, CultureInfo.InvariantCulture, out var n) && n >= min && n <= max) return n;
            errors.Add($"{At(path, v.Start)}: '{key}' expects a whole number from {min} to {max}, got '{v.Value}'");
            return fallback;
        }
        TimeSpan DurationValue(string key, TimeSpan fallback)
        {
            if (!values.TryGetValue(key, out var v)) return fallback;
            if (Durations.TryParse(v.Value, out var d)) return d;
            errors.Add($"{At(path, v.Start)}: '{key}' expects a duration like 30s, 15m, 6h or 2d, got '{v.Value}'");
            return fallback;
        }

        var uri = values.TryGetValue("libvirt-uri", out var u) ? u.Value : "qemu:///system";
        var connection = ResolveConnection(values, path, baseDir, credentialsDirectory, errors);
        var state = PathValue("state-directory", required: true);
        var scratch = PathValue("scratch-directory", required: false);
        var policies = PathValue("policies-directory", required: true);
        var maxParallel = IntValue("max-parallel", 2, 1, 64);
        var grace = DurationValue("misfire-grace", TimeSpan.FromHours(6));

        if (errors.Count > 0)
            throw new ConfigException(string.Join(Environment.NewLine, errors));

        return new DaemonConfig
        {
            SourcePath = path,
            LibvirtUri = uri,
            CatalogConnectionString = connection!,
            StateDirectory = state!,
            ScratchDirectory = scratch,
            PoliciesDirectory = policies!,
            MaxParallel = maxParallel,
            MisfireGrace = grace,
        };
    }

    /// <summary>
    /// The catalog connection string comes from, in order: a systemd credential, a file named in the
    /// configuration, or the configuration itself. A file keeps the password off the command line and
    /// out of a world-readable configuration.
    /// </summary>
    private static string? ResolveConnection(Dictionary<string, (string Value, Mark Start)> values, string path, string baseDir, string? credentials, List<string> errors)
    {
        if (!string.IsNullOrEmpty(credentials))
        {
            // The unit passes a blank default when /etc/backupd/catalog.conn is missing: blank is "not given".
            var credential = Path.Combine(credentials, CatalogCredentialName);
            if (File.Exists(credential) && File.ReadAllText(credential).Trim() is { Length: > 0 } fromCredential) return fromCredential;
        }
        var hasInline = values.TryGetValue("catalog-connection", out var inline);
        var hasFile = values.TryGetValue("catalog-connection-file", out var file);
        if (hasInline && hasFile)
        {
            errors.Add($"{At(path, file.Start)}: give either 'catalog-connection' or 'catalog-connection-file', not both");
            return null;
        }
        if (hasFile)
        {
            var full = Path.GetFullPath(file.Value, baseDir);
            try { return File.ReadAllText(full).Trim(); }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
                errors.Add($"{At(path, file.Start)}: 'catalog-connection-file' cannot be read: {e.Message}");
                return null;
            }
        }
        if (hasInline && inline.Value.Length > 0) return inline.Value;
        errors.Add($"{path}: missing required key 'catalog-connection' (an Npgsql connection string) or 'catalog-connection-file'");
        return null;
    }

    private static string At(string path, Mark mark) => $"{path}:{mark.Line}:{mark.Column}";

    private static string? Suggest(string key) => KeySuggestions.Suggest(key, KnownKeys);
}
