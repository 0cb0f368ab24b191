using Backupd.Policies.Model;
using Backupd.Policies.Selection;

namespace Backupd.Policies.Loading;

/// <summary>
/// Checks between policies: unique names, and no domain selected into one repository by two
/// policies (two writers would race on the same VM directory). Overlap is decided where it can
/// be: equal literal names, a literal matched by the other policy's glob (and excluded by
/// neither), or two identical globs. Two different globs are not compared.
/// </summary>
internal static class PolicySetChecks
{
    /// <summary>Clashes among the policies of one file (each later policy is checked against the earlier ones).</summary>
    public static IReadOnlyList<PolicyError> CheckWithin(IReadOnlyList<PolicyDefinition> policies, string path)
    {
        var errors = new List<PolicyError>();
        for (var i = 1; i < policies.Count; i++) errors.AddRange(Check(policies.Take(i).ToList(), [policies[i]], path));
        return errors;
    }

    /// <summary>Clashes of <paramref name="candidates"/> (from file <paramref name="path"/>) with already accepted policies.</summary>
    public static IReadOnlyList<PolicyError> Check(IReadOnlyList<PolicyDefinition> accepted, IReadOnlyList<PolicyDefinition> candidates, string path)
    {
        var errors = new List<PolicyError>();
        foreach (var candidate in candidates)
        {
            foreach (var earlier in accepted)
            {
                if (earlier.Name == candidate.Name)
                {
                    errors.Add(new PolicyError(path, candidate.Source.Line, candidate.Source.Column,
                        $"policy name '{candidate.Name}' is already used by the policy at {earlier.Source}"));
                    continue;
                }
                if (earlier.Repository != candidate.Repository) continue;
                if (Overlap(earlier.Domains, candidate.Domains) is { } overlap)
                {
                    var at = overlap.Position ?? candidate.Source;
                    errors.Add(new PolicyError(path, at.Line, at.Column,
                        $"domain {overlap.What} is also selected by policy '{earlier.Name}' ({earlier.Source}) into the same repository '{candidate.Repository}'; back up each domain into a repository from one policy only"));
                }
            }
        }
        return errors;
    }

    private static (string What, SourcePosition? Position)? Overlap(NameSelection earlier, NameSelection later)
    {
        foreach (var mine in later.Include)
        {
            foreach (var theirs in earlier.Include)
            {
                if (mine.IsLiteral && earlier.Matches(mine.Text) && later.Matches(mine.Text))
                    return ($"'{mine.Text}'", mine.Position);
                if (!mine.IsLiteral && theirs.IsLiteral && mine.Matches(theirs.Text) && later.Matches(theirs.Text) && earlier.Matches(theirs.Text))
                    return ($"'{theirs.Text}' (matched by '{mine.Text}')", mine.Position);
                if (!mine.IsLiteral && mine.Text == theirs.Text)
                    return ($"glob '{mine.Text}'", mine.Position);
            }
        }
        return null;
    }
}
