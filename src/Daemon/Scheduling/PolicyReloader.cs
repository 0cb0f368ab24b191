using Backupd.Policies.Loading;
using Backupd.Policies.Model;

namespace Backupd.Daemon.Scheduling;

/// <summary>The policies in force after a (re)load, and what the load reported.</summary>
public sealed record ReloadOutcome(
    IReadOnlyList<PolicyDefinition> Active,
    IReadOnlyList<PolicyError> Errors,
    IReadOnlyList<string> KeptPreviousVersion,
    IReadOnlyList<string> Added,
    IReadOnlyList<string> Removed,
    IReadOnlyList<string> Changed);

/// <summary>
/// Applies freshly loaded policy files on top of what is in force: a file with errors (or one
/// that clashes with another file) is reported and the previously loaded version of that file's
/// policies stays in force; a file that disappeared takes its policies with it. Pure apart from
/// the state it keeps between reloads.
/// </summary>
public sealed class PolicyReloader
{
    private readonly Dictionary<string, PolicyFileResult> _lastGood = new(StringComparer.Ordinal);
    private Dictionary<string, PolicyDefinition> _active = new(StringComparer.Ordinal);

    public IReadOnlyCollection<PolicyDefinition> Active => _active.Values;

    public ReloadOutcome Apply(IReadOnlyList<PolicyFileResult> fresh)
    {
        var errors = fresh.SelectMany(f => f.Errors).ToList();
        var kept = new List<string>();
        // First pass: broken files fall back to their last good version.
        var effective = fresh.Select(f => f.IsValid ? f : Previous(f.Path, kept) ?? f).ToList();
        var combined = PolicyLoader.Combine(effective);
        // Second pass: a file rejected for clashing with another falls back too.
        if (combined.Files.Any(f => !f.IsValid && fresh.Single(x => x.Path == f.Path).IsValid))
        {
            errors.AddRange(combined.Files.Where(f => !f.IsValid && fresh.Single(x => x.Path == f.Path).IsValid).SelectMany(f => f.Errors));
            effective = combined.Files.Select(f => f.IsValid ? f : Previous(f.Path, kept) ?? f).ToList();
            combined = PolicyLoader.Combine(effective);
        }
        foreach (var file in combined.Files.Where(f => f.IsValid)) _lastGood[file.Path] = file;
        foreach (var gone in _lastGood.Keys.Where(p => fresh.All(f => f.Path != p)).ToList()) _lastGood.Remove(gone);

        var next = combined.Policies.ToDictionary(p => p.Name, StringComparer.Ordinal);
        var added = next.Keys.Where(n => !_active.ContainsKey(n)).Order(StringComparer.Ordinal).ToList();
        var removed = _active.Keys.Where(n => !next.ContainsKey(n)).Order(StringComparer.Ordinal).ToList();
        var changed = next.Where(p => _active.TryGetValue(p.Key, out var old) && Fingerprint(old) != Fingerprint(p.Value))
            .Select(p => p.Key).Order(StringComparer.Ordinal).ToList();
        _active = next;
        return new ReloadOutcome(next.Values.ToList(), errors, kept.Distinct().ToList(), added, removed, changed);
    }

    private PolicyFileResult? Previous(string path, List<string> kept)
    {
        if (!_lastGood.TryGetValue(path, out var previous)) return null;
        kept.Add(path);
        return previous;
    }

    /// <summary>Everything that defines a policy's behaviour, as text (records holding time zones and parsed cron compare by reference).</summary>
    public static string Fingerprint(PolicyDefinition p) => string.Join('|',
        p.Name, p.Connection, string.Join(',', p.Domains.Include), string.Join(',', p.Domains.Exclude),
        string.Join(',', p.Disks.Include), string.Join(',', p.Disks.Exclude), ScheduleFingerprint(p.Schedule),
        p.Quiesce, p.Repository, p.BlockSize, p.Retention, p.Verify.AfterBackup,
        p.Verify.Schedule is null ? "" : ScheduleFingerprint(p.Verify.Schedule), p.MaxParallel,
        p.CopyTimeout, p.CommitTimeout, p.CopyBandwidth, p.CommitBandwidth,
        string.Join(';', p.Copies.Select(c => $"{c.Target},{c.Key},{c.Retention},{c.Bandwidth},{c.Retries},{c.RetryDelay}")));

    public static string ScheduleFingerprint(ScheduleDefinition s) => $"{s.TimeZoneId}:{string.Join(';', s.Entries.Select(e => e.CronText))}";
}
