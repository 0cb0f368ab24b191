using System.Globalization;
using System.Text.RegularExpressions;
using Backupd.Policies.Model;
using Backupd.Policies.Retention;
using Backupd.Policies.Schedules;
using Backupd.Policies.Selection;
using Backupd.Policies.Yaml;

namespace Backupd.Policies.Loading;

/// <summary>
/// Turns one policy mapping into a <see cref="PolicyDefinition"/>, adding an error for every
/// problem (and carrying on, so one pass reports them all). Returns null when anything was wrong.
/// </summary>
internal sealed partial class PolicyReader(ErrorList errors, string path, string baseDirectory)
{
    internal static readonly string[] PolicyKeys =
    [
        "name", "description", "connection", "domains", "disks", "schedule", "quiesce", "repository",
        "block-size", "full-every", "retention", "verify", "max-parallel", "timeouts", "bandwidth", "chains", "notify", "drill",
        "copies",
    ];
    internal static readonly string[] SelectionKeys = ["include", "exclude"];
    internal static readonly string[] ScheduleKeys = ["cron", "time-zone"];
    internal static readonly string[] RetentionKeys = ["keep-last", "keep-hourly", "keep-daily", "keep-weekly", "keep-monthly", "keep-yearly"];
    internal static readonly string[] VerifyKeys = ["after-backup", "schedule"];
    internal static readonly string[] TimeoutKeys = ["copy", "commit"];
    internal static readonly string[] BandwidthKeys = ["copy", "commit"];
    internal static readonly string[] DrillKeys = ["schedule", "timeout", "check", "trust-saved-xml"];
    internal static readonly string[] ChainsKeys = ["max-depth", "method"];
    internal static readonly string[] ChainMethods = ["commit", "pull"];
    internal static readonly string[] FullEveryKeys = ["backups", "days"];

    public const int MaxRetentionCount = 100_000;

    [GeneratedRegex("^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")]
    private static partial Regex NamePattern();

    public PolicyDefinition? Read(YMapping mapping)
    {
        var before = errors.Count;
        var keys = Keys(mapping, PolicyKeys, "policy");

        var name = keys.TryGetValue("name", out var nameNode) ? Name(nameNode) : null;
        var label = name is null ? "policy" : $"policy '{name}'";
        foreach (var required in new[] { ("name", "a policy name such as 'nightly-web'"), ("domains", "a list of domain names or globs"), ("schedule", "a cron expression or a form like 'daily 02:30'"), ("repository", "a repository directory") })
        {
            if (!keys.ContainsKey(required.Item1))
                errors.Add(mapping, $"{label} is missing required key '{required.Item1}' ({required.Item2})");
        }

        if (keys.TryGetValue("description", out var description)) String(description, "description", "a line of text");
        string? connection = null;
        if (keys.TryGetValue("connection", out var connectionNode))
        {
            connection = String(connectionNode, "connection", "a libvirt URI such as 'qemu:///system'");
            if (connection is not null && !connection.Contains("://", StringComparison.Ordinal))
                errors.Add(connectionNode, $"'connection' expects a libvirt URI such as 'qemu:///system', got '{connection}'");
        }
        var domains = keys.TryGetValue("domains", out var domainsNode) ? Selection(domainsNode, "domains", "domain name or glob") : null;
        var disks = keys.TryGetValue("disks", out var disksNode) ? Selection(disksNode, "disks", "disk target (vda, sdb) or glob") : NameSelection.All;
        var schedule = keys.TryGetValue("schedule", out var scheduleNode) ? Schedule(scheduleNode, "schedule") : null;
        var quiesce = keys.TryGetValue("quiesce", out var quiesceNode) ? Quiesce(quiesceNode) : QuiesceMode.Preferred;
        var repository = keys.TryGetValue("repository", out var repositoryNode) ? Repository(repositoryNode) : null;
        var blockSize = keys.TryGetValue("block-size", out var blockNode) ? BlockSize(blockNode) : PolicyDefaults.BlockSize;
        var fullEvery = keys.TryGetValue("full-every", out var fullNode) ? FullEvery(fullNode) : FullReadPeriod.Default;
        var retention = keys.TryGetValue("retention", out var retentionNode) ? Retention(retentionNode) : RetentionRules.KeepAll;
        var verify = keys.TryGetValue("verify", out var verifyNode) ? Verify(verifyNode) : VerifyOptions.None;
        var maxParallel = keys.TryGetValue("max-parallel", out var parallelNode)
            ? Integer(parallelNode, "max-parallel", 1, PolicyDefaults.MaxParallelLimit) ?? 1 : 1;
        var (copyTimeout, commitTimeout) = keys.TryGetValue("timeouts", out var timeoutsNode)
            ? Timeouts(timeoutsNode) : (PolicyDefaults.CopyTimeout, PolicyDefaults.CommitTimeout);
        var (copyRate, commitRate) = keys.TryGetValue("bandwidth", out var bandwidthNode) ? Bandwidth(bandwidthNode) : (null, null);
        var chains = keys.TryGetValue("chains", out var chainsNode) ? Chains(chainsNode) : null;
        var drill = keys.TryGetValue("drill", out var drillNode) ? Drill(drillNode) : null;
        var (notify, notifyAt) = keys.TryGetValue("notify", out var notifyNode) ? Notify(notifyNode) : ([], []);
        var copies = keys.TryGetValue("copies", out var copiesNode) ? Copies(copiesNode) : [];

        if (errors.Count > before || name is null || domains is null || schedule is null || repository is null) return null;
        return new PolicyDefinition
        {
            Name = name,
            Source = new SourcePosition(path, mapping.Line, mapping.Column),
            Connection = connection,
            Domains = domains,
            Disks = disks ?? NameSelection.All,
            Schedule = schedule,
            Quiesce = quiesce,
            Repository = repository,
            BlockSize = blockSize,
            FullEvery = fullEvery,
            Retention = retention ?? RetentionRules.KeepAll,
            Verify = verify ?? VerifyOptions.None,
            MaxParallel = maxParallel,
            CopyTimeout = copyTimeout,
            CommitTimeout = commitTimeout,
            CopyBandwidth = copyRate,
            CommitBandwidth = commitRate,
            Chains = chains,
            Notify = notify,
            Drill = drill,
            NotifyPositions = notifyAt,
            Copies = copies,
        };
    }

    /// <summary>`drill: {schedule:, timeout:, check:, trust-saved-xml:}` (issue 11): scheduled restore drills of the newest point.</summary>
    private DrillPolicy? Drill(YNode node)
    {
        if (node is not YMapping mapping)
        {
            errors.Add(node, $"'drill' expects a mapping with 'schedule:' and optionally 'timeout:', 'check:', 'trust-saved-xml:', got {Describe(node)}");
            return null;
        }
        var keys = Keys(mapping, DrillKeys, "'drill'");
        var schedule = keys.TryGetValue("schedule", out var scheduleNode) ? Schedule(scheduleNode, "drill.schedule") : null;
        if (scheduleNode is null) errors.Add(mapping, "'drill' is missing required key 'schedule' (a cron expression or a form like 'weekly sun 04:00')");
        var timeout = DrillPolicy.DefaultTimeout;
        if (keys.TryGetValue("timeout", out var timeoutNode)
            && !(timeoutNode is YScalar t && Units.TryParseDuration(t.Value, out timeout) && timeout >= TimeSpan.FromSeconds(10) && timeout <= DrillPolicy.MaxTimeout))
        {
            errors.Add(timeoutNode, $"'drill.timeout' expects a duration from 10s to 2h like 90s or 5m, got {Describe(timeoutNode)}");
            timeout = DrillPolicy.DefaultTimeout;
        }
        string? check = null;
        if (keys.TryGetValue("check", out var checkNode))
        {
            check = String(checkNode, "drill.check", "a shell command run in the guest, such as 'systemctl is-system-running --wait'");
        }
        var trusted = false;
        if (keys.TryGetValue("trust-saved-xml", out var trustNode))
        {
            if (trustNode is YScalar { Value: "true" or "false" } b) trusted = b.Value == "true";
            else errors.Add(trustNode, $"'drill.trust-saved-xml' expects true or false, got {Describe(trustNode)}");
        }
        return schedule is null ? null : new DrillPolicy(schedule, timeout, check, trusted);
    }

    private static readonly string FullEveryExpected = string.Create(CultureInfo.InvariantCulture,
        $"a whole number of backups from 1 to {FullReadPeriod.MaxBackups}, a number of days from 1d to {FullReadPeriod.MaxDays}d such as 14d, or {{backups: N, days: K}} (whichever comes first)");

    /// <summary>`full-every: 7` (backups), `full-every: 14d` (days) or `full-every: {backups: 7, days: 14}` (whichever comes first).</summary>
    private FullReadPeriod FullEvery(YNode node)
    {
        if (node is YMapping mapping)
        {
            var keys = Keys(mapping, FullEveryKeys, "'full-every'");
            if (mapping.Entries.Count == 0) errors.Add(mapping, $"'full-every' expects {FullEveryExpected}, got an empty mapping");
            int? backups = keys.TryGetValue("backups", out var b) ? Integer(b, "full-every.backups", 1, FullReadPeriod.MaxBackups) : null;
            int? days = keys.TryGetValue("days", out var d) ? Integer(d, "full-every.days", 1, FullReadPeriod.MaxDays) : null;
            return (backups, days) switch
            {
                ({ } n, { } k) => FullReadPeriod.Either(n, k),
                ({ } n, null) when d is null => FullReadPeriod.EveryBackups(n),
                (null, { } k) when b is null => FullReadPeriod.EveryDays(k),
                _ => FullReadPeriod.Default, // an error was reported
            };
        }
        if (node is YScalar { IsNull: false } scalar)
        {
            var text = scalar.Value;
            if (int.TryParse(text, NumberStyles.None, CultureInfo.InvariantCulture, out var n) && n is >= 1 and <= FullReadPeriod.MaxBackups)
                return FullReadPeriod.EveryBackups(n);
            if (text.EndsWith('d') && int.TryParse(text[..^1], NumberStyles.None, CultureInfo.InvariantCulture, out var k) && k is >= 1 and <= FullReadPeriod.MaxDays)
                return FullReadPeriod.EveryDays(k);
        }
        errors.Add(node, $"'full-every' expects {FullEveryExpected}, got {Describe(node)}");
        return FullReadPeriod.Default;
    }

    /// <summary>`chains: {max-depth: N, method: commit|pull}` (issue 13): shorten deeper chains after each backup.</summary>
    private ChainMaintenance? Chains(YNode node)
    {
        if (node is not YMapping mapping)
        {
            errors.Add(node, $"'chains' expects a mapping with 'max-depth:' (and optionally 'method: commit|pull'), got {Describe(node)}");
            return null;
        }
        var keys = Keys(mapping, ChainsKeys, "'chains'");
        if (!keys.TryGetValue("max-depth", out var depthNode))
        {
            errors.Add(mapping, "'chains' is missing required key 'max-depth' (the number of images a disk may have, e.g. 3)");
            return null;
        }
        var depth = Integer(depthNode, "chains.max-depth", 1, ChainMaintenance.MaxDepthLimit);
        var method = "commit";
        if (keys.TryGetValue("method", out var methodNode))
        {
            var text = methodNode is YScalar { IsNull: false } m ? m.Value : null;
            if (text is null || !ChainMethods.Contains(text))
            {
                var hint = text is null ? null : Suggest(text, ChainMethods);
                errors.Add(methodNode, $"'chains.method' expects commit or pull, got {Describe(methodNode)}{(hint is null ? "" : $" (did you mean '{hint}'?)")}");
                return null;
            }
            method = text;
        }
        return depth is { } d ? new ChainMaintenance(d, method) : null;
    }

    /// <summary>Indexes a mapping's keys, reporting unknown keys (with a suggestion) and duplicates.</summary>
    private Dictionary<string, YNode> Keys(YMapping mapping, string[] known, string where)
    {
        var result = new Dictionary<string, YNode>(StringComparer.Ordinal);
        var firstSeen = new Dictionary<string, YScalar>(StringComparer.Ordinal);
        foreach (var (key, value) in mapping.Entries)
        {
            if (!known.Contains(key.Value))
            {
                var hint = Suggest(key.Value, known);
                errors.Add(key, $"unknown key '{key.Value}' in {where}{(hint is null ? "" : $" (did you mean '{hint}'?)")}; expected one of: {string.Join(", ", known)}");
                continue;
            }
            if (firstSeen.TryGetValue(key.Value, out var first))
            {
                errors.Add(key, $"key '{key.Value}' is given twice (first at line {first.Line}, column {first.Column})");
                continue;
            }
            firstSeen[key.Value] = key;
            result[key.Value] = value;
        }
        return result;
    }

    private string? Name(YNode node)
    {
        var name = String(node, "name", "a policy name such as 'nightly-web'");
        if (name is null) return null;
        if (NamePattern().IsMatch(name)) return name;
        errors.Add(node, $"'name' expects 1-64 letters, digits, '.', '_' or '-' starting with a letter or digit, got '{name}'");
        return null;
    }

    private string? String(YNode node, string key, string expected)
    {
        if (node is YScalar { IsNull: false } scalar && scalar.Value.Trim().Length > 0) return scalar.Value;
        errors.Add(node, $"'{key}' expects {expected}, got {Describe(node)}");
        return null;
    }

    private int? Integer(YNode node, string key, int min, int max)
    {
        if (node is YScalar scalar && int.TryParse(scalar.Value, NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out var n) && n >= min && n <= max)
            return n;
        errors.Add(node, $"'{key}' expects a whole number from {min} to {max}, got {Describe(node)}");
        return null;
    }

    private NameSelection? Selection(YNode node, string key, string what)
    {
        switch (node)
        {
            case YMapping mapping:
                var keys = Keys(mapping, SelectionKeys, $"'{key}'");
                if (!keys.TryGetValue("include", out var include))
                {
                    errors.Add(mapping, $"'{key}' is missing required key 'include' (a {what} or a list of them)");
                    return null;
                }
                var included = Patterns(include, $"{key}.include", what, required: true);
                var excluded = keys.TryGetValue("exclude", out var exclude) ? Patterns(exclude, $"{key}.exclude", what, required: false) : [];
                return included is null || excluded is null ? null : new NameSelection(included, excluded);
            default:
                var patterns = Patterns(node, key, what, required: true);
                return patterns is null ? null : new NameSelection(patterns, []);
        }
    }

    private List<NamePattern>? Patterns(YNode node, string key, string what, bool required)
    {
        var items = node switch
        {
            YSequence sequence => sequence.Items,
            YScalar { IsNull: false } scalar => [scalar],
            _ => null,
        };
        if (items is null || (required && items.Count == 0))
        {
            errors.Add(node, $"'{key}' expects a {what} or a list of them, got {Describe(node)}");
            return null;
        }
        var result = new List<NamePattern>();
        var ok = true;
        foreach (var item in items)
        {
            if (item is not YScalar { IsNull: false } scalar || scalar.Value.Length == 0)
            {
                errors.Add(item, $"'{key}' expects each item to be a {what}, got {Describe(item)}");
                ok = false;
                continue;
            }
            if (scalar.Value.Contains('/', StringComparison.Ordinal) || scalar.Value.Trim() != scalar.Value)
            {
                errors.Add(item, $"'{key}' item '{scalar.Value}' is not a valid {what}: no '/' and no leading or trailing spaces");
                ok = false;
                continue;
            }
            result.Add(new NamePattern(scalar.Value) { Position = new SourcePosition(path, scalar.Line, scalar.Column) });
        }
        return ok ? result : null;
    }

    private ScheduleDefinition? Schedule(YNode node, string key)
    {
        YNode entriesNode = node;
        var zoneId = PolicyDefaults.TimeZone;
        YNode? zoneNode = null;
        if (node is YMapping mapping)
        {
            var keys = Keys(mapping, ScheduleKeys, $"'{key}'");
            if (!keys.TryGetValue("cron", out var cron))
            {
                errors.Add(mapping, $"'{key}' is missing required key 'cron' (a cron expression, a form like 'daily 02:30', or a list of them)");
                return null;
            }
            entriesNode = cron;
            if (keys.TryGetValue("time-zone", out zoneNode)) zoneId = String(zoneNode, "time-zone", "an IANA time zone id such as 'UTC' or 'Europe/Berlin'") ?? "";
        }
        var items = entriesNode switch
        {
            YSequence { Items.Count: > 0 } sequence => sequence.Items,
            YScalar { IsNull: false } scalar => [scalar],
            _ => null,
        };
        if (items is null)
        {
            errors.Add(entriesNode, $"'{key}' expects a cron expression (e.g. '0 30 2 * * ?'), a form like {HumanSchedule.Forms}, or a list of them; got {Describe(entriesNode)}");
            return null;
        }
        var entries = new List<ScheduleEntry>();
        foreach (var item in items)
        {
            if (item is not YScalar { IsNull: false } scalar)
            {
                errors.Add(item, $"'{key}' expects each entry to be a cron expression or a form like 'daily 02:30', got {Describe(item)}");
                continue;
            }
            if (ScheduleEntryOf(scalar, key) is { } entry) entries.Add(entry);
        }
        TimeZoneInfo? zone = null;
        if (zoneNode is not null && zoneId.Length > 0 && !TryFindZone(zoneId, out zone))
            errors.Add(zoneNode, $"unknown time zone '{zoneId}'; expected an IANA time zone id such as 'UTC' or 'Europe/Berlin'");
        else if (zoneNode is null)
            zone = TimeZoneInfo.Utc;
        if (entries.Count != items.Count || zone is null) return null;
        return new ScheduleDefinition(entries, zoneId, zone);
    }

    private static bool TryFindZone(string id, out TimeZoneInfo? zone)
    {
        zone = null;
        // Only IANA ids ('Area/City' or 'UTC'); never a bare offset or a Windows name.
        if (id.Contains(' ', StringComparison.Ordinal) || id.Contains("..", StringComparison.Ordinal)) return false;
        if (!TimeZoneInfo.TryFindSystemTimeZoneById(id, out var found)) return false;
        zone = found;
        return true;
    }

    private ScheduleEntry? ScheduleEntryOf(YScalar scalar, string key)
    {
        var text = scalar.Value.Trim();
        var cronText = text;
        if (HumanSchedule.IsHumanForm(text))
        {
            if (!HumanSchedule.TryTranslate(text, out cronText, out var humanError))
            {
                errors.Add(scalar, $"'{key}' entry '{text}': {humanError}");
                return null;
            }
        }
        if (CronExpression.TryParse(cronText, out var cron, out var cronError)) return new ScheduleEntry(text, cron!);
        // Point at the offending character when the text is the cron itself on one line.
        var leading = scalar.Value.Length - scalar.Value.TrimStart().Length;
        var column = cronText == text && !scalar.Value.Contains('\n', StringComparison.Ordinal)
            ? scalar.Column + (scalar.Quoted ? 1 : 0) + leading + cronError!.Offset
            : scalar.Column;
        errors.Add(scalar.Line, column, $"'{key}' entry '{text}' is not a valid cron expression: {cronError!.Message}");
        return null;
    }

    /// <summary>`notify:` names targets defined in the daemon configuration (where their secrets live); <see cref="NotifyNameChecks"/> checks the names exist.</summary>
    private (List<string> Names, List<SourcePosition> At) Notify(YNode node)
    {
        var items = node is YSequence sequence ? sequence.Items : [node];
        var names = new List<string>();
        var at = new List<SourcePosition>();
        foreach (var item in items)
        {
            if (item is YScalar { Value: var value } && NamePattern().IsMatch(value))
            {
                names.Add(value);
                at.Add(new SourcePosition(path, item.Line, item.Column));
                continue;
            }
            errors.Add(item, $"'notify' expects a list of notification target names from the daemon configuration (letters, digits, '.', '_' or '-'), got {Describe(item)}");
        }
        return (names, at);
    }

    private QuiesceMode Quiesce(YNode node)
    {
        switch (node is YScalar scalar ? scalar.Value : null)
        {
            case "required": return QuiesceMode.Required;
            case "preferred": return QuiesceMode.Preferred;
            case "off": return QuiesceMode.Off;
            default:
                errors.Add(node, $"'quiesce' expects one of: required, preferred, off; got {Describe(node)}");
                return QuiesceMode.Preferred;
        }
    }

    private string? Repository(YNode node)
    {
        var value = String(node, "repository", "a repository directory path");
        if (value is null) return null;
        if (value.Contains('\0', StringComparison.Ordinal))
        {
            errors.Add(node, "'repository' expects a directory path, got a value with a NUL character");
            return null;
        }
        var full = Path.GetFullPath(value, baseDirectory);
        return full.Length > 1 ? full.TrimEnd('/') : full;
    }

    private int BlockSize(YNode node)
    {
        if (node is YScalar scalar && Units.TryParseSize(scalar.Value, out var bytes) && PolicyDefaults.IsValidBlockSize(bytes))
            return (int)bytes;
        errors.Add(node, $"'block-size' expects a power of two from 4KiB to 4MiB (e.g. 64KiB, 1MiB), got {Describe(node)}");
        return PolicyDefaults.BlockSize;
    }

    private RetentionRules? Retention(YNode node)
    {
        if (node is not YMapping mapping)
        {
            errors.Add(node, $"'retention' expects a mapping of {string.Join(", ", RetentionKeys)} to counts, got {Describe(node)}");
            return null;
        }
        var keys = Keys(mapping, RetentionKeys, "'retention'");
        int Count(string key) => keys.TryGetValue(key, out var n) ? Integer(n, key, 0, MaxRetentionCount) ?? 0 : 0;
        return new RetentionRules(Count("keep-last"), Count("keep-hourly"), Count("keep-daily"), Count("keep-weekly"), Count("keep-monthly"), Count("keep-yearly"));
    }

    private VerifyOptions? Verify(YNode node)
    {
        if (node is not YMapping mapping)
        {
            errors.Add(node, $"'verify' expects a mapping with 'after-backup: true|false' and/or 'schedule:', got {Describe(node)}");
            return null;
        }
        var keys = Keys(mapping, VerifyKeys, "'verify'");
        var after = false;
        if (keys.TryGetValue("after-backup", out var afterNode))
        {
            if (afterNode is YScalar { Value: "true" or "false" } b) after = b.Value == "true";
            else errors.Add(afterNode, $"'after-backup' expects true or false, got {Describe(afterNode)}");
        }
        var schedule = keys.TryGetValue("schedule", out var scheduleNode) ? Schedule(scheduleNode, "verify.schedule") : null;
        if (afterNode is null && scheduleNode is null) errors.Add(mapping, "'verify' expects 'after-backup: true' and/or a 'schedule:'; remove 'verify' to never verify");
        return new VerifyOptions(after, schedule);
    }

    private (TimeSpan Copy, TimeSpan Commit) Timeouts(YNode node)
    {
        var result = (PolicyDefaults.CopyTimeout, PolicyDefaults.CommitTimeout);
        if (node is not YMapping mapping)
        {
            errors.Add(node, $"'timeouts' expects a mapping with 'copy:' and/or 'commit:' durations, got {Describe(node)}");
            return result;
        }
        var keys = Keys(mapping, TimeoutKeys, "'timeouts'");
        TimeSpan Duration(string key, TimeSpan fallback)
        {
            if (!keys.TryGetValue(key, out var n)) return fallback;
            if (n is YScalar s && Units.TryParseDuration(s.Value, out var d) && d > TimeSpan.Zero && d <= TimeSpan.FromDays(7)) return d;
            errors.Add(n, $"'timeouts.{key}' expects a duration from 1s to 7d like 90s, 15m, 6h or 1h30m, got {Describe(n)}");
            return fallback;
        }
        return (Duration("copy", result.Item1), Duration("commit", result.Item2));
    }

    private (long? Copy, long? Commit) Bandwidth(YNode node)
    {
        if (node is not YMapping mapping)
        {
            errors.Add(node, $"'bandwidth' expects a mapping with 'copy:' and/or 'commit:' rates, got {Describe(node)}");
            return (null, null);
        }
        var keys = Keys(mapping, BandwidthKeys, "'bandwidth'");
        long? Rate(string key)
        {
            if (!keys.TryGetValue(key, out var n)) return null;
            if (n is YScalar s && Units.TryParseRate(s.Value, out var r) && r >= 1024 * 1024) return r;
            errors.Add(n, $"'bandwidth.{key}' expects a rate of at least 1MiB/s like 50MiB/s or 1GiB/s, got {Describe(n)}");
            return null;
        }
        return (Rate("copy"), Rate("commit"));
    }

    internal static string Describe(YNode node) => node switch
    {
        YScalar { IsNull: true } => "nothing",
        YScalar s => $"'{Shorten(s.Value)}'",
        YSequence { Items.Count: 0 } => "an empty list",
        YSequence => "a list",
        YMapping { Entries.Count: 0 } => "an empty mapping",
        YMapping => "a mapping",
        _ => "an unsupported value",
    };

    private static string Shorten(string value) => value.Length <= 60 ? value : value[..57] + "...";

    internal static string? Suggest(string key, IEnumerable<string> known) => KeySuggestions.Suggest(key, known);
}
