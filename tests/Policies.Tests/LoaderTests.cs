using System.Text;
using Backupd.Policies.Loading;

namespace Backupd.Policies.Tests;

public sealed class LoaderTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("bkd-policies-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    private string Write(string name, string text)
    {
        var path = Path.Combine(_dir, name);
        File.WriteAllText(path, text);
        return path;
    }

    private static string Policy(string name, string domains, string repository = "/srv/a") =>
        $"name: {name}\ndomains: {domains}\nschedule: hourly\nrepository: {repository}\n";

    [Fact]
    public void A_single_policy_mapping_is_a_file_of_one_policy()
    {
        var result = PolicyLoader.ParseText(Policy("web", "[web1]"), "/etc/p/web.yaml");
        Assert.True(result.IsValid);
        Assert.Equal("web", Assert.Single(result.Policies).Name);
    }

    [Fact]
    public void Several_documents_each_of_either_form()
    {
        var text = Policy("one", "[a]") + "---\npolicies:\n  - {name: two, domains: [b], schedule: daily, repository: /srv/b}\n  - {name: three, domains: [c], schedule: weekly, repository: /srv/c}\n";
        Assert.Equal(["one", "two", "three"], PolicyLoader.ParseText(text, "p.yaml").Policies.Select(p => p.Name));
    }

    [Fact]
    public void Anchors_and_aliases_share_settings()
    {
        var text = "policies:\n  - name: a\n    domains: [a]\n    schedule: hourly\n    repository: /srv/a\n    retention: &keep {keep-last: 2, keep-daily: 7}\n  - name: b\n    domains: [b]\n    schedule: hourly\n    repository: /srv/b\n    retention: *keep\n";
        var policies = PolicyLoader.ParseText(text, "p.yaml").Policies;
        Assert.Equal(policies[0].Retention, policies[1].Retention);
        Assert.Equal(7, policies[1].Retention.Daily);
    }

    [Fact]
    public void A_relative_repository_is_resolved_against_the_policy_file()
    {
        var policy = Assert.Single(PolicyLoader.ParseText(Policy("web", "[w]", "../repos/web/"), "/etc/backupd/policies.d/web.yaml").Policies);
        Assert.Equal("/etc/backupd/repos/web", policy.Repository);
    }

    [Fact]
    public void A_byte_order_mark_is_accepted()
    {
        var bytes = Encoding.UTF8.GetPreamble().Concat(Encoding.UTF8.GetBytes(Policy("web", "[w]"))).ToArray();
        Assert.True(PolicyLoader.Parse(bytes, "p.yaml").IsValid);
    }

    [Fact]
    public void A_domain_excluded_by_the_glob_policy_does_not_overlap()
    {
        var text = "policies:\n  - {name: one, domains: {include: ['web-*'], exclude: [web-7]}, schedule: hourly, repository: /srv/a}\n  - {name: two, domains: [web-7], schedule: daily, repository: /srv/a}\n";
        Assert.True(PolicyLoader.ParseText(text, "p.yaml").IsValid);
    }

    [Fact]
    public void The_same_domain_into_different_repositories_is_fine()
    {
        var text = "policies:\n  - {name: one, domains: [db1], schedule: hourly, repository: /srv/a}\n  - {name: two, domains: [db1], schedule: daily, repository: /srv/b}\n";
        Assert.True(PolicyLoader.ParseText(text, "p.yaml").IsValid);
    }

    [Fact]
    public void Clashes_across_files_invalidate_the_later_file_only()
    {
        var a = Write("10-a.yaml", Policy("web", "[web1]"));
        var b = Write("20-b.yaml", Policy("web", "[web2]", "/srv/b"));
        var c = Write("30-c.yaml", Policy("other", "['web*']"));
        var set = PolicyLoader.LoadDirectory(_dir);
        Assert.Equal([a, b, c], set.Files.Select(f => f.Path));
        Assert.True(set.Files[0].IsValid);
        Assert.Equal($"{b}:1:1: policy name 'web' is already used by the policy at {a}:1:1", Assert.Single(set.Files[1].Errors).ToString());
        Assert.Equal($"{c}:2:11: domain 'web1' (matched by 'web*') is also selected by policy 'web' ({a}:1:1) into the same repository '/srv/a'; back up each domain into a repository from one policy only",
            Assert.Single(set.Files[2].Errors).ToString());
        Assert.Equal(["web"], set.Policies.Select(p => p.Name));
    }

    [Fact]
    public void Directory_listing_skips_hidden_and_other_files()
    {
        Write("b.yml", Policy("b", "[b]", "/srv/b"));
        Write("a.yaml", Policy("a", "[a]"));
        Write(".#a.yaml", "garbage: [");
        Write("README.txt", "not a policy");
        Assert.Equal(["a.yaml", "b.yml"], PolicyLoader.PolicyFilesIn(_dir).Select(Path.GetFileName));
        Assert.True(PolicyLoader.LoadDirectory(_dir).IsValid);
    }

    [Fact]
    public void A_huge_file_on_disk_is_refused_without_reading_it()
    {
        var path = Path.Combine(_dir, "huge.yaml");
        using (var f = File.Create(path)) f.SetLength(PolicyLoader.MaxFileBytes + 1L);
        var error = Assert.Single(PolicyLoader.LoadFile(path).Errors);
        Assert.Equal($"{path}:1:1: file is 1048577 bytes; a policy file may be at most 1048576 bytes (1 MiB): split it into several files", error.ToString());
    }

    [Fact]
    public void A_missing_file_or_directory_is_an_error_not_an_exception()
    {
        var missing = Path.Combine(_dir, "nope.yaml");
        Assert.Equal($"{missing}:1:1: file not found", Assert.Single(PolicyLoader.LoadFile(missing).Errors).ToString());
        Assert.False(PolicyLoader.LoadDirectory(Path.Combine(_dir, "nodir")).IsValid);
        var e = Assert.Throws<PolicyLoadException>(() => PolicyLoader.LoadFileOrThrow(missing));
        Assert.Equal($"{missing}:1:1: file not found", e.Message);
    }

    [Fact]
    public void Next_fire_times_merge_all_schedule_entries()
    {
        var policy = Assert.Single(PolicyLoader.ParseText("name: w\ndomains: [w]\nrepository: /r\nschedule: {cron: [daily 02:00, daily 14:00], time-zone: Europe/Berlin}\n", "p.yaml").Policies);
        var after = new DateTimeOffset(2026, 11, 26, 12, 0, 0, TimeSpan.Zero);
        Assert.Equal(
            [new DateTimeOffset(2026, 11, 26, 14, 0, 0, TimeSpan.FromHours(1)), new DateTimeOffset(2026, 11, 27, 2, 0, 0, TimeSpan.FromHours(1)), new DateTimeOffset(2026, 11, 27, 14, 0, 0, TimeSpan.FromHours(1))],
            policy.Schedule.NextFireTimes(after, 3));
    }
}
