using Backupd.Policies.Model;

namespace Backupd.Policies.Selection;

/// <summary>
/// A domain or disk name, or a glob over names: <c>*</c> matches any run of characters, <c>?</c> one
/// character; everything else is literal and case-sensitive (libvirt names are).
/// </summary>
public sealed record NamePattern(string Text)
{
    public bool Equals(NamePattern? other) => other is not null && other.Text == Text;
    public override int GetHashCode() => Text.GetHashCode(StringComparison.Ordinal);

    /// <summary>Where the pattern was written, for messages; not part of its meaning.</summary>
    public SourcePosition? Position { get; init; }

    public bool IsLiteral => Text.IndexOfAny(['*', '?']) < 0;

    public bool Matches(string name) => Glob(Text, 0, name, 0);

    public override string ToString() => Text;

    // Iterative glob with single back-tracking point: linear in practice, no recursion depth issue.
    private static bool Glob(string pattern, int p, string text, int t)
    {
        int starP = -1, starT = -1;
        while (t < text.Length)
        {
            if (p < pattern.Length && (pattern[p] == '?' || pattern[p] == text[t])) { p++; t++; }
            else if (p < pattern.Length && pattern[p] == '*') { starP = p++; starT = t; }
            else if (starP >= 0) { p = starP + 1; t = ++starT; }
            else return false;
        }
        while (p < pattern.Length && pattern[p] == '*') p++;
        return p == pattern.Length;
    }
}

/// <summary>Names selected by include patterns minus exclude patterns.</summary>
public sealed record NameSelection(IReadOnlyList<NamePattern> Include, IReadOnlyList<NamePattern> Exclude)
{
    /// <summary>Every name (used for disks when a policy does not restrict them).</summary>
    public static readonly NameSelection All = new([new NamePattern("*")], []);

    public bool Matches(string name) => Include.Any(p => p.Matches(name)) && !Exclude.Any(p => p.Matches(name));

    /// <summary>The names from <paramref name="candidates"/> this selection picks, in their order.</summary>
    public IReadOnlyList<string> SelectFrom(IEnumerable<string> candidates) => candidates.Where(Matches).ToList();
}
