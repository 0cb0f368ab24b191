using Backupd.Policies.Loading;

namespace Backupd.Policies.Tests;

/// <summary>`chains: {max-depth: N, method: commit|pull}` is validated like every key: position, expected values, did-you-mean.</summary>
public sealed class ChainsKeyTests
{
    private const string Head = "name: web\ndomains: [w]\nschedule: hourly\nrepository: /r\n";

    [Fact]
    public void Max_depth_and_method_are_read_and_method_defaults_to_commit()
    {
        var pull = Assert.Single(PolicyLoader.ParseText(Head + "chains: {max-depth: 3, method: pull}\n", "p.yaml").Policies);
        Assert.Equal(new Model.ChainMaintenance(3, "pull"), pull.Chains);
        var commit = Assert.Single(PolicyLoader.ParseText(Head + "chains:\n  max-depth: 2\n", "p.yaml").Policies);
        Assert.Equal(new Model.ChainMaintenance(2, "commit"), commit.Chains);
        Assert.Null(Assert.Single(PolicyLoader.ParseText(Head, "p.yaml").Policies).Chains);
    }

    [Theory]
    [InlineData("chains: {max-depth: 3, method: pul}\n", "p.yaml:5:", "'chains.method' expects commit or pull, got 'pul' (did you mean 'pull'?)")]
    [InlineData("chains: {max-depht: 3}\n", "p.yaml:5:", "unknown key 'max-depht' in 'chains' (did you mean 'max-depth'?)")]
    [InlineData("chains: {max-depth: 0}\n", "p.yaml:5:", "'chains.max-depth' expects a whole number from 1 to 64, got '0'")]
    [InlineData("chains: {method: pull}\n", "p.yaml:5:", "'chains' is missing required key 'max-depth'")]
    [InlineData("chains: 3\n", "p.yaml:5:", "'chains' expects a mapping")]
    public void Mistakes_are_reported_with_position_and_what_was_expected(string line, string position, string message)
    {
        var result = PolicyLoader.ParseText(Head + line, "p.yaml");
        Assert.False(result.IsValid);
        // The first error is the one at the mistake (a misspelt key also makes the required one missing).
        var error = result.Errors[0].ToString();
        Assert.StartsWith(position, error, StringComparison.Ordinal);
        Assert.Contains(message, error, StringComparison.Ordinal);
    }
}
