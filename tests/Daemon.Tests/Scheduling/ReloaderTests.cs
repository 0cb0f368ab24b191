using Backupd.Daemon.Scheduling;

namespace Backupd.Daemon.Tests.Scheduling;

public class ReloaderTests
{
    private const string A = "/p/a.yaml";
    private const string B = "/p/b.yaml";

    [Fact]
    public void A_broken_file_keeps_its_previous_policies()
    {
        var reloader = new PolicyReloader();
        var first = reloader.Apply([TestPolicies.File(A, TestPolicies.Yaml("web", "[w]", "hourly")), TestPolicies.File(B, TestPolicies.Yaml("db", "[d]", repository: "/srv/db"))]);
        Assert.Equal(["db", "web"], first.Added);

        var second = reloader.Apply([TestPolicies.File(A, "name: web\ndomains: [w]\nschedule: daily 25:00\nrepository: /srv/r\n"), TestPolicies.File(B, TestPolicies.Yaml("db", "[d]", "daily", repository: "/srv/db"))]);
        Assert.Equal([A], second.KeptPreviousVersion);
        Assert.Equal("/p/a.yaml:3:11: 'schedule' entry 'daily 25:00': expected 'daily' or 'daily HH:MM' (24-hour clock)", Assert.Single(second.Errors).ToString());
        Assert.Equal("0 0 * * * ?", second.Active.Single(p => p.Name == "web").Schedule.Entries[0].CronText);
        Assert.Equal(["db"], second.Changed);
        Assert.Empty(second.Removed);
    }

    [Fact]
    public void A_removed_file_removes_its_policies_and_a_new_file_adds()
    {
        var reloader = new PolicyReloader();
        reloader.Apply([TestPolicies.File(A, TestPolicies.Yaml("web", "[w]"))]);
        var outcome = reloader.Apply([TestPolicies.File(B, TestPolicies.Yaml("db", "[d]"))]);
        Assert.Equal(["web"], outcome.Removed);
        Assert.Equal(["db"], outcome.Added);
        Assert.Equal(["db"], outcome.Active.Select(p => p.Name));
    }

    [Fact]
    public void A_broken_file_never_loaded_before_contributes_nothing()
    {
        var outcome = new PolicyReloader().Apply([TestPolicies.File(A, "name: [x]\n")]);
        Assert.Empty(outcome.Active);
        Assert.Empty(outcome.KeptPreviousVersion);
        Assert.NotEmpty(outcome.Errors);
    }

    [Fact]
    public void A_changed_file_that_now_clashes_with_another_keeps_its_previous_version()
    {
        var reloader = new PolicyReloader();
        reloader.Apply([TestPolicies.File(A, TestPolicies.Yaml("web", "[w]")), TestPolicies.File(B, TestPolicies.Yaml("db", "[d]", repository: "/srv/db"))]);
        // b.yaml now also selects 'w' into the repository of a.yaml's policy.
        var outcome = reloader.Apply([TestPolicies.File(A, TestPolicies.Yaml("web", "[w]")), TestPolicies.File(B, TestPolicies.Yaml("db", "[d, w]", "daily"))]);
        Assert.True(outcome.KeptPreviousVersion.SequenceEqual([B]), string.Join("\n", outcome.Errors));
        Assert.True(outcome.Errors.Any(e => e.File == B && e.Message.StartsWith("domain 'w' is also selected by policy 'web'", StringComparison.Ordinal)), string.Join("\n", outcome.Errors));
        Assert.Equal(["d"], outcome.Active.Single(p => p.Name == "db").Domains.Include.Select(p => p.Text));
    }

    [Fact]
    public void Unchanged_files_report_no_change()
    {
        var reloader = new PolicyReloader();
        reloader.Apply([TestPolicies.File(A, TestPolicies.Yaml("web", "[w]"))]);
        var outcome = reloader.Apply([TestPolicies.File(A, TestPolicies.Yaml("web", "[w]"))]);
        Assert.Empty(outcome.Added);
        Assert.Empty(outcome.Changed);
        Assert.Empty(outcome.Removed);
    }
}
