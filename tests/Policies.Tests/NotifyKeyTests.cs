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

    [Fact]
    public void A_name_that_is_not_a_daemon_target_makes_the_file_invalid_with_file_line_and_a_suggestion()
    {
        var file = PolicyLoader.ParseText(Base + "notify: [ops-mail, ops-hok]\n", "/etc/backupd/policies.d/web.yaml");
        Assert.True(file.IsValid); // the policy loader alone cannot know the targets

        var checkedFile = NotifyNameChecks.Check(file, ["ops-hook", "ops-mail"]);

        Assert.Empty(checkedFile.Policies);
        Assert.Equal("/etc/backupd/policies.d/web.yaml:5:20: 'notify' of policy 'web' names 'ops-hok', which is not a notify target of the daemon configuration (did you mean 'ops-hook'?); targets: ops-hook, ops-mail",
            Assert.Single(checkedFile.Errors).ToString());
    }

    [Fact]
    public void Known_names_pass_unchanged_and_without_any_target_every_name_is_refused()
    {
        var file = PolicyLoader.ParseText(Base + "notify: ops\n", "p.yaml");
        Assert.Same(file, NotifyNameChecks.Check(file, ["ops"]));
        var none = NotifyNameChecks.Check(file, []);
        Assert.Equal("p.yaml:5:9: 'notify' of policy 'web' names 'ops', which is not a notify target of the daemon configuration; the configuration defines no notify targets",
            Assert.Single(none.Errors).ToString());
        var unrelated = NotifyNameChecks.Check(file, ["database-team"]);
        Assert.DoesNotContain("did you mean", Assert.Single(unrelated.Errors).Message, StringComparison.Ordinal);
    }
}
