using System.Text.RegularExpressions;
using Backupd.Daemon.Cli;

namespace Backupd.Daemon.Tests.Cli;

/// <summary>
/// The exit-code table in docs/cli.md is what scripts read; <see cref="ExitCodes.For"/> is what the process does.
/// Every failure kind sits in exactly one row of the doc, and that row's code is the one the map gives it.
/// </summary>
public sealed partial class ExitCodeTableTests
{
    /// <summary>"| 3 | meaning | `not-found`, `domain-not-found` |" → (3, [not-found, domain-not-found]).</summary>
    private static Dictionary<int, string[]> DocumentedTable()
    {
        var doc = File.ReadAllText(Path.Combine(ConfigLoaderTests.RepoRoot(), "docs", "cli.md"));
        var section = doc[doc.IndexOf("## Exit codes", StringComparison.Ordinal)..];
        section = section[..section.IndexOf("### ", StringComparison.Ordinal)];
        return Row().Matches(section).ToDictionary(
            m => int.Parse(m.Groups["code"].Value, System.Globalization.CultureInfo.InvariantCulture),
            m => Kind().Matches(m.Groups["kinds"].Value).Select(k => k.Groups[1].Value).ToArray());
    }

    public static TheoryData<FailureKind> Kinds() => new(Enum.GetValues<FailureKind>());

    [Theory]
    [MemberData(nameof(Kinds))]
    public void Each_kind_is_in_the_row_of_its_exit_code(FailureKind kind)
    {
        var rows = DocumentedTable().Where(r => r.Value.Contains(ExitCodes.Name(kind))).Select(r => r.Key).ToList();
        Assert.Equal([ExitCodes.For(kind)], rows);
    }

    [Fact]
    public void The_table_lists_the_codes_the_map_gives_and_no_unknown_kind()
    {
        var table = DocumentedTable();
        var kinds = Enum.GetValues<FailureKind>().Select(ExitCodes.Name).ToHashSet();
        Assert.Equal([ExitCodes.Ok, ExitCodes.Failed, ExitCodes.UsageOrConfig, ExitCodes.NotFound, ExitCodes.Busy, ExitCodes.Damaged, ExitCodes.NeedsAttention, ExitCodes.Cancelled],
            table.Keys.Order());
        Assert.All(table.Values.SelectMany(k => k), k => Assert.Contains(k, kinds));
        // A bare exit code (a command that returned it without a message) maps back to a kind of that code.
        foreach (var code in table.Keys.Where(c => c != ExitCodes.Ok))
            Assert.Equal(code, ExitCodes.For(ExitCodes.KindOf(code)));
    }

    [GeneratedRegex(@"^\| (?<code>\d+) \|[^|\n]*\|(?<kinds>[^|\n]*)\|$", RegexOptions.Multiline)]
    private static partial Regex Row();

    [GeneratedRegex("`([a-z-]+)`")]
    private static partial Regex Kind();
}
