namespace Backupd.Policies.Model;

/// <summary>
/// `full-every`: how often changed-block tracking's safety net reads a disk in full — every <see cref="Backups"/>th backup,
/// or once <see cref="Days"/> days have passed since the disk's last full read, whichever comes first (either may be null,
/// not both). `full-every: 7`, `full-every: 14d`, `full-every: {backups: 7, days: 14}` (docs/policies.md).
/// </summary>
public sealed record FullReadPeriod
{
    public const int MaxBackups = 10_000;
    /// <summary>Ten years: more is a typo, not a policy.</summary>
    public const int MaxDays = 3660;

    public static readonly FullReadPeriod Default = EveryBackups(PolicyDefaults.FullEvery);

    public int? Backups { get; }
    public int? Days { get; }

    private FullReadPeriod(int? backups, int? days)
    {
        if (backups is null && days is null) throw new ArgumentException("a full-read period needs backups, days or both");
        if (backups is < 1 or > MaxBackups) throw new ArgumentOutOfRangeException(nameof(backups), backups, $"1 to {MaxBackups}");
        if (days is < 1 or > MaxDays) throw new ArgumentOutOfRangeException(nameof(days), days, $"1 to {MaxDays}");
        Backups = backups;
        Days = days;
    }

    public static FullReadPeriod EveryBackups(int backups) => new(backups, null);
    public static FullReadPeriod EveryDays(int days) => new(null, days);
    public static FullReadPeriod Either(int backups, int days) => new(backups, days);

    /// <summary>
    /// Whether this backup of a disk reads it in full. <paramref name="sinceFull"/>: incremental backups of the disk since its last
    /// full read; <paramref name="lastFullRead"/>: when that full read was (null: unknown — an older point that did not record it —
    /// which counts as due, so the period cannot be skipped). Pure: <paramref name="now"/> comes from the caller's clock.
    /// </summary>
    public bool IsDue(int sinceFull, DateTimeOffset? lastFullRead, DateTimeOffset now)
    {
        if (Backups is { } n && sinceFull + 1 >= n) return true;
        if (Days is { } d) return lastFullRead is not { } last || now - last >= TimeSpan.FromDays(d);
        return false;
    }

    /// <summary>As a policy file writes it.</summary>
    public override string ToString() => (Backups, Days) switch
    {
        ({ } b, { } d) => $"{{backups: {b}, days: {d}}}",
        ({ } b, null) => b.ToString(System.Globalization.CultureInfo.InvariantCulture),
        (null, { } d) => $"{d}d",
        _ => "",
    };
}
