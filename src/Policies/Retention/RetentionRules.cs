namespace Backupd.Policies.Retention;

/// <summary>
/// keep-last/hourly/daily/weekly/monthly/yearly counts (Proxmox Backup Server semantics). A count of
/// zero disables its rule. When every count is zero, nothing is pruned.
/// </summary>
public sealed record RetentionRules(int Last = 0, int Hourly = 0, int Daily = 0, int Weekly = 0, int Monthly = 0, int Yearly = 0)
{
    public static readonly RetentionRules KeepAll = new();

    /// <summary>True when no rule is set: every point is kept.</summary>
    public bool KeepsEverything => Last == 0 && Hourly == 0 && Daily == 0 && Weekly == 0 && Monthly == 0 && Yearly == 0;

    public override string ToString() =>
        KeepsEverything ? "keep all" :
        string.Join(", ", new[] { ("last", Last), ("hourly", Hourly), ("daily", Daily), ("weekly", Weekly), ("monthly", Monthly), ("yearly", Yearly) }
            .Where(r => r.Item2 > 0).Select(r => $"keep-{r.Item1} {r.Item2}"));
}
