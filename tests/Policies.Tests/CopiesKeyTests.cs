using Backupd.Policies.Loading;
using Backupd.Policies.Model;
using Backupd.Policies.Retention;

namespace Backupd.Policies.Tests;

/// <summary>`copies:` (issue 15) is validated like every key: position, expected values, did-you-mean; defaults documented in docs/policies.md.</summary>
public sealed class CopiesKeyTests
{
    private const string Head = "name: web\ndomains: [w]\nschedule: hourly\nrepository: /r\n";

    [Fact]
    public void Every_key_of_an_entry_is_read_and_the_defaults_apply_when_omitted()
    {
        var policy = Assert.Single(PolicyLoader.ParseText(Head + """
            copies:
              - to: ssh://backupd@nas:2222/srv/copies
                key: keys/offsite.key
                retention: {keep-last: 2, keep-monthly: 6}
                bandwidth: 20MiB/s
                retries: 5
                retry-delay: 30s
              - to: /mnt/usb/copies/
            """, "/etc/backupd/policies.d/p.yaml").Policies);
        Assert.Equal(2, policy.Copies.Count);
        var remote = policy.Copies[0];
        Assert.Equal("ssh://backupd@nas:2222/srv/copies", remote.Target);
        Assert.Equal("/etc/backupd/policies.d/keys/offsite.key", remote.Key);
        Assert.Equal(new RetentionRules(2, 0, 0, 0, 6, 0), remote.Retention);
        Assert.Equal(20L << 20, remote.Bandwidth);
        Assert.Equal((5, TimeSpan.FromSeconds(30)), (remote.Retries, remote.RetryDelay));
        Assert.Equal(6, remote.Source.Line);
        var usb = policy.Copies[1];
        Assert.Equal("/mnt/usb/copies", usb.Target);
        Assert.Null(usb.Key);
        Assert.Null(usb.Bandwidth);
        Assert.Equal(RetentionRules.KeepAll, usb.Retention);
        Assert.Equal((CopyDestination.DefaultRetries, CopyDestination.DefaultRetryDelay), (usb.Retries, usb.RetryDelay));
        Assert.Empty(Assert.Single(PolicyLoader.ParseText(Head, "p.yaml").Policies).Copies);
    }

    [Fact]
    public void The_back_off_doubles_from_the_retry_delay_and_is_capped()
    {
        var copy = new CopyDestination("/c", null, RetentionRules.KeepAll, null, 3, TimeSpan.FromSeconds(10), new SourcePosition("p", 1, 1));
        Assert.Equal([10, 20, 40, 80], Enumerable.Range(1, 4).Select(a => copy.BackOff(a).TotalSeconds).ToArray());
        Assert.Equal(TimeSpan.FromHours(6), copy.BackOff(20));
    }

    [Theory]
    [InlineData("copies: [{to: copies/here}]\n", "p.yaml:5:", "'copies.to' 'copies/here': a directory must be an absolute path")]
    [InlineData("copies: [{to: 's3://bucket/x'}]\n", "p.yaml:5:", "only a directory or ssh://[user@]host[:port]/path is supported")]
    [InlineData("copies: [{to: 'ssh://nas'}]\n", "p.yaml:5:", "expected ssh://[user@]host[:port]/absolute/path")]
    [InlineData("copies: [{key: /k}]\n", "p.yaml:5:", "'copies' entry is missing required key 'to'")]
    [InlineData("copies: [{to: /c, retrys: 2}]\n", "p.yaml:5:", "unknown key 'retrys' in a 'copies' entry (did you mean 'retries'?)")]
    [InlineData("copies: [{to: /c, retries: 50}]\n", "p.yaml:5:", "'copies.retries' expects a whole number from 0 to 20, got '50'")]
    [InlineData("copies: [{to: /c, bandwidth: 10K}]\n", "p.yaml:5:", "'copies.bandwidth' expects a rate of at least 1MiB/s")]
    [InlineData("copies: [{to: /c, retry-delay: soon}]\n", "p.yaml:5:", "'copies.retry-delay' expects a duration from 1s to 6h")]
    [InlineData("copies: [{to: /c, retention: {keep-dayly: 3}}]\n", "p.yaml:5:", "unknown key 'keep-dayly' in 'retention' (did you mean 'keep-daily'?)")]
    [InlineData("copies: /c\n", "p.yaml:5:", "'copies' expects a list of copy targets")]
    [InlineData("copies:\n  - to: /c\n  - to: /c/\n", "p.yaml:7:", "'copies' names target '/c' twice (first at line 6)")]
    public void Mistakes_are_reported_with_position_and_what_was_expected(string line, string position, string message)
    {
        var result = PolicyLoader.ParseText(Head + line, "p.yaml");
        Assert.False(result.IsValid);
        var error = result.Errors[0].ToString();
        Assert.StartsWith(position, error, StringComparison.Ordinal);
        Assert.Contains(message, error, StringComparison.Ordinal);
    }
}
