using System.Globalization;
using Backupd.Policies.Loading;
using Backupd.Policies.Yaml;

namespace Backupd.Daemon.Configuration;

/// <summary>
/// Reads the daemon configuration (a flat YAML mapping). Reports every problem at once with
/// file:line:column, rejects unknown keys, and resolves relative paths against the file's directory.
/// Files are read like policy files (<see cref="RegularFile"/>: regular files only, size-limited) and
/// parsed by the same bounded parser (<see cref="YamlTree"/>).
/// </summary>
public static class ConfigLoader
{
    /// <summary>The configuration and the connection-string file are a few lines; the policy files' limit is generous for them.</summary>
    public const int MaxFileBytes = PolicyLoader.MaxFileBytes;

    public const string EnvironmentVariable = "BACKUPD_CONFIG";
    public const string DefaultPath = "/etc/backupd/backupd.yaml";

    /// <summary>systemd LoadCredential= name for the catalog connection string.</summary>
    public const string CatalogCredentialName = "catalog-connection";

    private static readonly string[] KnownKeys =
    [
        "libvirt-uri", "catalog-connection", "catalog-connection-file", "state-directory",
        "scratch-directory", "policies-directory", "max-parallel", "misfire-grace", "catalog-retry",
        "reader-wait", "scrub-cycle", "agent-timeout", "stale-check", "http", "notify", "changed-blocks",
    ];

    public static DaemonConfig Load(string? explicitPath)
    {
        var path = explicitPath ?? Environment.GetEnvironmentVariable(EnvironmentVariable) ?? DefaultPath;
        path = Path.GetFullPath(path);
        string text;
        try { text = RegularFile.ReadAllText(path, MaxFileBytes); }
        catch (FileRefusedException e) when (e.Refusal == FileRefusal.NotFound)
        { throw new ConfigException($"{path}: configuration file not found (set --config or ${EnvironmentVariable})", e); }
        catch (FileRefusedException e)
        { throw new ConfigException(e.Message, e); }
        return Parse(text, path);
    }

    public static DaemonConfig Parse(string text, string path) =>
        Parse(text, path, Environment.GetEnvironmentVariable("CREDENTIALS_DIRECTORY"));

    /// <summary><see cref="Parse(string, string)"/> with systemd's credentials directory given (null: none).</summary>
    internal static DaemonConfig Parse(string text, string path, string? credentialsDirectory)
    {
        var errors = new List<string>();
        var values = new Dictionary<string, (string Value, YNode Start)>();
        var sections = new Dictionary<string, YMapping>();
        var (documents, problem) = YamlTree.Parse(text);
        if (problem is not null)
            throw new ConfigException($"{path}:{problem.Line}:{problem.Column}: {problem.Message}");
        if (documents.Count == 0 || documents[0] is not YMapping root)
            throw new ConfigException($"{path}:1:1: expected a mapping of configuration keys (e.g. 'state-directory: /var/lib/backupd')");

        foreach (var (keyNode, valueNode) in root.Entries)
        {
            var key = keyNode.Value;
            if (!KnownKeys.Contains(key))
            {
                var hint = Suggest(key);
                errors.Add($"{At(path, keyNode)}: unknown key '{key}'{(hint is null ? "" : $" (did you mean '{hint}'?)")}; known keys: {string.Join(", ", KnownKeys)}");
                continue;
            }
            if (key is "http" or "notify")
            {
                // Nested sections, read by their own parsers (Web/HttpSettings, Notifications/NotifyTarget).
                if (valueNode is YMapping section && !sections.ContainsKey(key)) sections[key] = section;
                else errors.Add($"{At(path, valueNode)}: '{key}' expects a mapping (see config/backupd.yaml){(sections.ContainsKey(key) ? " and is given twice" : "")}");
                continue;
            }
            if (valueNode is not YScalar scalar)
            {
                errors.Add($"{At(path, valueNode)}: '{key}' expects a single value, not a list or mapping");
                continue;
            }
            if (values.ContainsKey(key))
            {
                errors.Add($"{At(path, keyNode)}: '{key}' is given twice");
                continue;
            }
            values[key] = (scalar.Value, scalar);
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
        var catalogRetry = DurationValue("catalog-retry", TimeSpan.FromMinutes(2));
        var readerWait = DurationValue("reader-wait", Storage.Repository.BackupRepository.DefaultReaderWait);
        var scrubCycle = IntValue("scrub-cycle", Storage.Repository.BackupRepository.DefaultScrubCycle, 0, 1 << 20);
        var agentTimeout = DurationValue("agent-timeout", GuestAgent.AgentGuard.DefaultTimeout);
        // libvirt counts whole seconds (0 would mean "do not wait"); minutes would bring back the stall it bounds.
        if ((agentTimeout < TimeSpan.FromSeconds(1) || agentTimeout > TimeSpan.FromMinutes(5)) && values.TryGetValue("agent-timeout", out var at))
            errors.Add($"{At(path, at.Start)}: 'agent-timeout' expects a duration from 1s to 5m, got '{at.Value}'");
        var staleCheck = DurationValue("stale-check", Notifications.NotificationDispatcher.DefaultStaleCheck);
        if ((staleCheck < TimeSpan.FromSeconds(1) || staleCheck > TimeSpan.FromHours(1)) && values.TryGetValue("stale-check", out var sc))
            errors.Add($"{At(path, sc.Start)}: 'stale-check' expects a duration from 1s to 1h, got '{sc.Value}'");

        var changedBlocks = true;
        if (values.TryGetValue("changed-blocks", out var cb))
        {
            if (cb.Value is "on" or "off") changedBlocks = cb.Value == "on";
            else errors.Add($"{At(path, cb.Start)}: 'changed-blocks' expects on or off, got '{cb.Value}'");
        }

        var http = sections.TryGetValue("http", out var httpSection) ? Web.HttpSettings.Parse(path, httpSection, errors) : null;
        var notify = sections.TryGetValue("notify", out var notifySection) ? Notifications.NotifyTarget.ParseAll(path, notifySection, errors) : [];

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
            CatalogRetry = catalogRetry,
            ReaderWait = readerWait,
            ScrubCycle = scrubCycle,
            AgentTimeout = agentTimeout,
            StaleCheck = staleCheck,
            ChangedBlocks = changedBlocks,
            Http = http,
            Notify = notify,
        };
    }

    /// <summary>
    /// The catalog connection string comes from, in order: a systemd credential, a file named in the
    /// configuration, or the configuration itself. A file keeps the password off the command line and
    /// out of a world-readable configuration.
    /// </summary>
    private static string? ResolveConnection(Dictionary<string, (string Value, YNode Start)> values, string path, string baseDir, string? credentials, List<string> errors)
    {
        if (!string.IsNullOrEmpty(credentials))
        {
            // The unit passes a blank default when /etc/backupd/catalog.conn is missing: blank is "not given".
            var credential = Path.Combine(credentials, CatalogCredentialName);
            if (File.Exists(credential) && ReadSecret(credential).Trim() is { Length: > 0 } fromCredential) return fromCredential;
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
            try { return RegularFile.ReadAllText(full, MaxFileBytes).Trim(); }
            catch (FileRefusedException e)
            {
                errors.Add($"{At(path, file.Start)}: 'catalog-connection-file' cannot be read: {e.Message}");
                return null;
            }
        }
        if (hasInline && inline.Value.Length > 0) return inline.Value;
        errors.Add($"{path}: missing required key 'catalog-connection' (an Npgsql connection string) or 'catalog-connection-file'");
        return null;
    }

    private static string ReadSecret(string path)
    {
        try { return RegularFile.ReadAllText(path, MaxFileBytes).Trim(); }
        catch (FileRefusedException e) { throw new ConfigException($"systemd credential {e.Message}", e); }
    }

    private static string At(string path, YNode node) => $"{path}:{node.Line}:{node.Column}";

    private static string? Suggest(string key) => KeySuggestions.Suggest(key, KnownKeys);
}
