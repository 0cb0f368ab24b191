using Backupd.Policies.Loading;

namespace Backupd.Policies.Tests;

/// <summary>A policy's `notify:` names targets of the daemon configuration: a name or a list of names.</summary>
public sealed class NotifyKeyTests
{
    private const string Base = "name: web\ndomains: [web1]\nschedule: daily 02:00\nrepository: /srv/r\n";

    [Fact]
    public void Notify_takes_one_name_or_a_list_and_defaults_to_none()
    {
        Assert.Empty(Assert.Single(PolicyLoader.ParseText(Base, "p.yaml").Policies).Notify);
        Assert.Equal(["ops"], Assert.Single(PolicyLoader.ParseText(Base + "notify: ops\n", "p.yaml").Policies).Notify);
        Assert.Equal(["ops", "mail.team-a"], Assert.Single(PolicyLoader.ParseText(Base + "notify: [ops, mail.team-a]\n", "p.yaml").Policies).Notify);
    }

    [Fact]
    public void A_bad_name_or_a_misspelt_key_is_an_error_with_its_position()
    {
        var bad = PolicyLoader.ParseText(Base + "notify: [ops, 'no spaces']\n", "p.yaml");
        Assert.Empty(bad.Policies);
        Assert.StartsWith("p.yaml:5:15: 'notify' expects a list of notification target names", Assert.Single(bad.Errors).ToString(), StringComparison.Ordinal);
        var misspelt = PolicyLoader.ParseText(Base + "notfy: ops\n", "p.yaml");
        Assert.Contains("(did you mean 'notify'?)", Assert.Single(misspelt.Errors).ToString(), StringComparison.Ordinal);
    }
}
