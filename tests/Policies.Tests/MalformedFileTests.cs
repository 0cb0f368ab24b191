using Backupd.Policies.Loading;

namespace Backupd.Policies.Tests;

/// <summary>
/// Every malformed file of <see cref="MalformedCases"/> must yield exactly these errors, in this
/// order, each as line:column: message (the file name is checked separately), and no policy.
/// </summary>
public class MalformedFileTests
{
    private static readonly Dictionary<string, string[]> Expected = new()
    {
            ["empty file"] = [
                "1:1: file is empty; expected a 'policies:' list or a single policy mapping (see docs/policies.md)",
            ],
            ["only comments"] = [
                "1:1: file is empty; expected a 'policies:' list or a single policy mapping (see docs/policies.md)",
            ],
            ["tab indentation"] = [
                "2:1: tab character in indentation; YAML indents with spaces only",
            ],
            ["tabs on two lines"] = [
                "4:1: tab character in indentation; YAML indents with spaces only",
                "5:1: tab character in indentation; YAML indents with spaces only",
            ],
            ["non-UTF-8 byte"] = [
                "2:14: not valid UTF-8 (byte 0xE9 at offset 21); save the file as UTF-8",
            ],
            ["UTF-16 file"] = [
                "1:1: file is UTF-16 encoded; save it as UTF-8",
            ],
            ["huge file"] = [
                "1:1: file is 1048579 bytes; a policy file may be at most 1048576 bytes (1 MiB): split it into several files",
            ],
            ["unclosed flow list"] = [
                "2:10: not valid YAML: the parser could not read past this point (check quotes, brackets and indentation)",
            ],
            ["top level is a list"] = [
                "1:1: expected a 'policies:' list or a single policy mapping (keys like 'name:', 'domains:', 'schedule:')",
            ],
            ["top level is a scalar"] = [
                "1:1: expected a 'policies:' list or a single policy mapping (keys like 'name:', 'domains:', 'schedule:')",
            ],
            ["policies is a scalar"] = [
                "1:11: 'policies' expects a non-empty list of policy mappings ('- name: ...')",
            ],
            ["policies is empty"] = [
                "1:11: 'policies' expects a non-empty list of policy mappings ('- name: ...')",
            ],
            ["policies item is a scalar"] = [
                "2:5: expected a policy mapping (keys like 'name:', 'domains:', 'schedule:') as a list item",
            ],
            ["key beside policies"] = [
                "1:1: unexpected top-level key 'version' beside 'policies:'; a file holds either a 'policies:' list or a single policy",
            ],
            ["policies twice"] = [
                "2:1: key 'policies' is given twice (first at line 1, column 1)",
                "1:11: 'policies' expects a non-empty list of policy mappings ('- name: ...')",
            ],
            ["misspelt key"] = [
                "4:1: unknown key 'schedul' in policy (did you mean 'schedule'?); expected one of: name, description, connection, domains, disks, schedule, quiesce, repository, block-size, full-every, retention, verify, max-parallel, timeouts, bandwidth, chains, notify, drill, copies",
                "1:1: policy 'web' is missing required key 'schedule' (a cron expression or a form like 'daily 02:30')",
            ],
            ["unknown key without suggestion"] = [
                "5:1: unknown key 'colour' in policy; expected one of: name, description, connection, domains, disks, schedule, quiesce, repository, block-size, full-every, retention, verify, max-parallel, timeouts, bandwidth, chains, notify, drill, copies",
            ],
            ["underscore key"] = [
                "5:1: unknown key 'max_parallel' in policy (did you mean 'max-parallel'?); expected one of: name, description, connection, domains, disks, schedule, quiesce, repository, block-size, full-every, retention, verify, max-parallel, timeouts, bandwidth, chains, notify, drill, copies",
            ],
            ["duplicate key"] = [
                "5:1: key 'name' is given twice (first at line 1, column 1)",
            ],
            ["missing name"] = [
                "1:1: policy is missing required key 'name' (a policy name such as 'nightly-web')",
            ],
            ["missing domains and repository"] = [
                "1:1: policy 'web' is missing required key 'domains' (a list of domain names or globs)",
                "1:1: policy 'web' is missing required key 'repository' (a repository directory)",
            ],
            ["name with a space"] = [
                "1:7: 'name' expects 1-64 letters, digits, '.', '_' or '-' starting with a letter or digit, got 'my policy'",
            ],
            ["name is a list"] = [
                "1:7: 'name' expects a policy name such as 'nightly-web', got a list",
            ],
            ["repository empty"] = [
                "4:12: 'repository' expects a repository directory path, got nothing",
            ],
            ["domains empty list"] = [
                "2:10: 'domains' expects a domain name or glob or a list of them, got an empty list",
            ],
            ["domain item is a mapping"] = [
                "4:5: 'domains' expects each item to be a domain name or glob, got a mapping",
            ],
            ["domain with a slash"] = [
                "2:11: 'domains' item 'web/1' is not a valid domain name or glob: no '/' and no leading or trailing spaces",
            ],
            ["domains mapping without include"] = [
                "2:10: 'domains' is missing required key 'include' (a domain name or glob or a list of them)",
            ],
            ["domains misspelt exclude"] = [
                "2:27: unknown key 'exlude' in 'domains' (did you mean 'exclude'?); expected one of: include, exclude",
            ],
            ["disks include empty"] = [
                "5:18: 'disks.include' expects a disk target (vda, sdb) or glob or a list of them, got an empty list",
            ],
            ["cron with five fields"] = [
                "4:12: 'schedule' entry '0 0 2 * *' is not a valid cron expression: expected 6 or 7 fields (seconds minutes hours day-of-month month day-of-week [year]), found 5",
            ],
            ["cron minute out of range"] = [
                "4:13: 'schedule' entry '0 61 2 * * ?' is not a valid cron expression: minutes field '61': '61' is not valid here; expected a number 0-59, '*', a range 'a-b', a list 'a,b' or a step 'a/n'",
            ],
            ["quoted cron bad hour"] = [
                "4:16: 'schedule' entry '0 0 24 * * ?' is not a valid cron expression: hours field '24': '24' is not valid here; expected a number 0-23, '*', a range 'a-b', a list 'a,b' or a step 'a/n'",
            ],
            ["cron both question marks"] = [
                "4:17: 'schedule' entry '0 0 2 ? * ?' is not a valid cron expression: day-of-month and day-of-week are both '?'; give one of them",
            ],
            ["cron neither question mark"] = [
                "4:21: 'schedule' entry '0 0 2 * * MON' is not a valid cron expression: give '?' in either day-of-month or day-of-week (Quartz does not combine both), e.g. '0 0 2 * * ?' or '0 0 2 ? * MON'",
            ],
            ["cron zero step"] = [
                "4:15: 'schedule' entry '0 */0 * * * ?' is not a valid cron expression: minutes field '*/0': step '0' must be a whole number from 1 to 60",
            ],
            ["cron bad month name"] = [
                "4:19: 'schedule' entry '0 0 2 ? FOO MON' is not a valid cron expression: month field 'FOO': 'FOO' is not valid here; expected 1-12 or JAN-DEC, '*', a range, a list or a step",
            ],
            ["cron bad nth weekday"] = [
                "4:25: 'schedule' entry '0 0 2 ? * MON#6' is not a valid cron expression: day-of-week field 'MON#6': expected 'n#k' with k from 1 to 5 (the k-th such weekday of the month)",
            ],
            ["cron in a list, second bad"] = [
                "6:11: 'schedule' entry '0 0 2 32W * ?' is not a valid cron expression: day-of-month field '32W': expected 'nW' with n from 1 to 31 (the weekday nearest to day n)",
            ],
            ["daily with a bad time"] = [
                "4:11: 'schedule' entry 'daily 25:00': expected 'daily' or 'daily HH:MM' (24-hour clock)",
            ],
            ["every with a non-divisor"] = [
                "4:11: 'schedule' entry 'every 7m': expected 'every Ns', 'every Nm' or 'every Nh' where N divides 60 (s, m) or 24 (h), e.g. 'every 15m'",
            ],
            ["weekly with a bad day"] = [
                "4:11: 'schedule' entry 'weekly funday 02:00': expected 'weekly' or 'weekly DAY[,DAY...] HH:MM' (DAY is mon..sun)",
            ],
            ["schedule mapping without cron"] = [
                "4:11: 'schedule' is missing required key 'cron' (a cron expression, a form like 'daily 02:30', or a list of them)",
            ],
            ["unknown time zone"] = [
                "4:37: unknown time zone 'Mars/Olympus'; expected an IANA time zone id such as 'UTC' or 'Europe/Berlin'",
            ],
            ["time zone as a list"] = [
                "4:37: 'time-zone' expects an IANA time zone id such as 'UTC' or 'Europe/Berlin', got a list",
            ],
            ["schedule entry is a mapping"] = [
                "4:18: 'schedule' expects a cron expression (e.g. '0 30 2 * * ?'), a form like 'hourly', 'hourly :MM', 'daily', 'daily HH:MM', 'weekly', 'weekly DAY HH:MM', 'monthly', 'monthly D HH:MM', 'every 30s|15m|6h', or a list of them; got a mapping",
            ],
            ["quiesce bad value"] = [
                "5:10: 'quiesce' expects one of: required, preferred, off; got 'always'",
            ],
            ["block size not a power of two"] = [
                "5:13: 'block-size' expects a power of two from 4KiB to 4MiB (e.g. 64KiB, 1MiB), got '100KiB'",
            ],
            ["block size too small"] = [
                "5:13: 'block-size' expects a power of two from 4KiB to 4MiB (e.g. 64KiB, 1MiB), got '1KiB'",
            ],
            ["negative retention"] = [
                "5:25: 'keep-daily' expects a whole number from 0 to 100000, got '-1'",
            ],
            ["retention count not a number"] = [
                "5:24: 'keep-last' expects a whole number from 0 to 100000, got 'many'",
            ],
            ["retention underscore key"] = [
                "5:13: unknown key 'keep_daily' in 'retention' (did you mean 'keep-daily'?); expected one of: keep-last, keep-hourly, keep-daily, keep-weekly, keep-monthly, keep-yearly",
            ],
            ["retention as a list"] = [
                "5:12: 'retention' expects a mapping of keep-last, keep-hourly, keep-daily, keep-weekly, keep-monthly, keep-yearly to counts, got a list",
            ],
            ["verify after-backup yes"] = [
                "5:24: 'after-backup' expects true or false, got 'yes'",
            ],
            ["verify empty"] = [
                "5:9: 'verify' expects 'after-backup: true' and/or a 'schedule:'; remove 'verify' to never verify",
            ],
            ["max-parallel zero"] = [
                "5:15: 'max-parallel' expects a whole number from 1 to 64, got '0'",
            ],
            ["full-every zero"] = [
                "5:13: 'full-every' expects a whole number of backups from 1 to 10000, a number of days from 1d to 3660d such as 14d, or {backups: N, days: K} (whichever comes first), got '0'",
            ],
            ["full-every words"] = [
                "5:13: 'full-every' expects a whole number of backups from 1 to 10000, a number of days from 1d to 3660d such as 14d, or {backups: N, days: K} (whichever comes first), got 'weekly'",
            ],
            ["max-parallel words"] = [
                "5:15: 'max-parallel' expects a whole number from 1 to 64, got 'two'",
            ],
            ["copy timeout not a duration"] = [
                "5:18: 'timeouts.copy' expects a duration from 1s to 7d like 90s, 15m, 6h or 1h30m, got 'forever'",
            ],
            ["commit timeout zero"] = [
                "5:20: 'timeouts.commit' expects a duration from 1s to 7d like 90s, 15m, 6h or 1h30m, got '0s'",
            ],
            ["bandwidth not a rate"] = [
                "5:19: 'bandwidth.copy' expects a rate of at least 1MiB/s like 50MiB/s or 1GiB/s, got 'fast'",
            ],
            ["bandwidth too small"] = [
                "5:21: 'bandwidth.commit' expects a rate of at least 1MiB/s like 50MiB/s or 1GiB/s, got '1KiB/s'",
            ],
            ["connection not a URI"] = [
                "5:13: 'connection' expects a libvirt URI such as 'qemu:///system', got 'localhost'",
            ],
            ["duplicate policy names"] = [
                "3:5: policy name 'web' is already used by the policy at f.yaml:2:5",
            ],
            ["same domain same repository"] = [
                "3:27: domain 'db1' is also selected by policy 'one' (f.yaml:2:5) into the same repository '/srv/a'; back up each domain into a repository from one policy only",
            ],
            ["literal matched by a glob"] = [
                "3:32: domain 'web-7' is also selected by policy 'one' (f.yaml:2:5) into the same repository '/srv/a'; back up each domain into a repository from one policy only",
            ],
            ["same glob twice"] = [
                "3:27: domain glob 'web-*' is also selected by policy 'one' (f.yaml:2:5) into the same repository '/srv/a'; back up each domain into a repository from one policy only",
            ],
            ["alias without anchor"] = [
                "4:11: alias '*daily' refers to no earlier anchor '&daily'",
            ],
            ["nesting too deep"] = [
                "5:76: nesting deeper than 64 levels",
            ],
            ["many errors at once"] = [
                "1:7: 'name' expects 1-64 letters, digits, '.', '_' or '-' starting with a letter or digit, got 'bad name'",
                "2:10: 'domains' expects a domain name or glob or a list of them, got an empty list",
                "3:11: 'schedule' entry 'daily 99:99': expected 'daily' or 'daily HH:MM' (24-hour clock)",
                "5:10: 'quiesce' expects one of: required, preferred, off; got 'maybe'",
                "6:26: 'keep-weekly' expects a whole number from 0 to 100000, got '-3'",
            ],
    };

    public static TheoryData<string> CaseNames() => new(MalformedCases.Inputs.Select(c => c.Name));

    [Fact]
    public void The_table_has_at_least_forty_cases_and_an_expectation_for_each()
    {
        Assert.True(MalformedCases.Inputs.Length >= 40, $"only {MalformedCases.Inputs.Length} cases");
        Assert.Equal(MalformedCases.Inputs.Select(c => c.Name).Order(), Expected.Keys.Order());
    }

    [Theory]
    [MemberData(nameof(CaseNames))]
    public void Malformed_file_reports_exact_errors(string name)
    {
        var content = MalformedCases.Inputs.Single(c => c.Name == name).Content;
        var result = PolicyLoader.Parse(content, "f.yaml");
        Assert.False(result.IsValid);
        Assert.Empty(result.Policies);
        Assert.All(result.Errors, e => Assert.Equal("f.yaml", e.File));
        Assert.Equal(Expected[name], result.Errors.Select(e => $"{e.Line}:{e.Column}: {e.Message}"));
    }

    [Fact]
    public void Errors_print_as_file_line_column_message()
    {
        var result = PolicyLoader.ParseText("name: web\n", "/etc/backupd/policies.d/web.yaml");
        Assert.Equal("/etc/backupd/policies.d/web.yaml:1:1: policy 'web' is missing required key 'domains' (a list of domain names or globs)", result.Errors[0].ToString());
    }
}
