using Backupd.Policies.Loading;

namespace Backupd.Policies.Tests;

/// <summary>`drill: {schedule:, timeout:, check:, trust-saved-xml:}` (issue 11) is validated like every key: position, expected values, did-you-mean.</summary>
public sealed class DrillKeyTests
{
    private const string Head = "name: web\ndomains: [w]\nschedule: hourly\nrepository: /r\n";

    [Fact]
    public void Schedule_timeout_check_and_trust_are_read_with_defaults()
    {
        var full = Assert.Single(PolicyLoader.ParseText(Head + "drill:\n  schedule: weekly sun 04:00\n  timeout: 90s\n  check: systemctl is-system-running\n  trust-saved-xml: true\n", "p.yaml").Policies);
        Assert.NotNull(full.Drill);
        Assert.Equal(TimeSpan.FromSeconds(90), full.Drill.Timeout);
        Assert.Equal("systemctl is-system-running", full.Drill.Check);
        Assert.True(full.Drill.TrustSavedXml);
        Assert.Single(full.Drill.Schedule.Entries);

        var minimal = Assert.Single(PolicyLoader.ParseText(Head + "drill: {schedule: daily 05:00}\n", "p.yaml").Policies).Drill;
        Assert.NotNull(minimal);
        Assert.Equal(Model.DrillPolicy.DefaultTimeout, minimal.Timeout);
        Assert.Null(minimal.Check);
        Assert.False(minimal.TrustSavedXml);
        Assert.Null(Assert.Single(PolicyLoader.ParseText(Head, "p.yaml").Policies).Drill);
    }

    [Theory]
    [InlineData("drill: {timeout: 5m}\n", "p.yaml:5:", "'drill' is missing required key 'schedule'")]
    [InlineData("drill: {schedule: daily 05:00, timeout: 2s}\n", "p.yaml:5:", "'drill.timeout' expects a duration from 10s to 2h")]
    [InlineData("drill: {schedule: daily 05:00, timeout: 3h}\n", "p.yaml:5:", "'drill.timeout' expects a duration from 10s to 2h")]
    [InlineData("drill: {schedule: daily 05:00, chek: true}\n", "p.yaml:5:", "unknown key 'chek' in 'drill' (did you mean 'check'?)")]
    [InlineData("drill: {schedule: daily 05:00, check: ''}\n", "p.yaml:5:", "'drill.check' expects a shell command")]
    [InlineData("drill: {schedule: daily 05:00, trust-saved-xml: yes}\n", "p.yaml:5:", "'drill.trust-saved-xml' expects true or false")]
    [InlineData("drill: weekly\n", "p.yaml:5:", "'drill' expects a mapping")]
    [InlineData("drill: {schedule: sometimes}\n", "p.yaml:5:", "drill.schedule")]
    public void Mistakes_are_reported_with_position_and_what_was_expected(string line, string position, string message)
    {
        var result = PolicyLoader.ParseText(Head + line, "p.yaml");
        Assert.False(result.IsValid);
        var error = result.Errors[0].ToString();
        Assert.StartsWith(position, error, StringComparison.Ordinal);
        Assert.Contains(message, error, StringComparison.Ordinal);
    }
}
