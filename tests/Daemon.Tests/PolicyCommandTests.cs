using System.Diagnostics;
using System.Text.Json;
using Backupd.Daemon.Cli.Commands;
using Backupd.Policies.Loading;

namespace Backupd.Daemon.Tests;

/// <summary>`backupd policy check`, run as the real executable: exit codes, text and JSON output.</summary>
public sealed class PolicyCommandTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("bkd-policy-check-").FullName;
    private static readonly string Examples = Path.Combine(ConfigLoaderTests.RepoRoot(), "config", "policies.d");

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    private static Task<(int Code, string Stdout, string Stderr)> Backupd(params string[] args) => Backupd(TimeSpan.FromMinutes(5), args);

    /// <summary>Runs backupd; past <paramref name="limit"/> it is killed and the test fails (a hang must not hang the test run).</summary>
    private static async Task<(int Code, string Stdout, string Stderr)> Backupd(TimeSpan limit, params string[] args)
    {
        var info = new ProcessStartInfo("dotnet") { RedirectStandardOutput = true, RedirectStandardError = true };
        info.ArgumentList.Add(Path.Combine(AppContext.BaseDirectory, "backupd.dll"));
        foreach (var a in args) info.ArgumentList.Add(a);
        info.Environment.Remove("BACKUPD_CONFIG");
        using var p = Process.Start(info)!;
        var stdout = p.StandardOutput.ReadToEndAsync();
        var stderr = p.StandardError.ReadToEndAsync();
        using var timeout = new CancellationTokenSource(limit);
        try
        {
            await p.WaitForExitAsync(timeout.Token);
        }
        catch (OperationCanceledException)
        {
            p.Kill(entireProcessTree: true);
            Assert.Fail($"backupd {string.Join(' ', args)} still ran after {limit}");
        }
        return (p.ExitCode, await stdout, await stderr);
    }

    private string Write(string name, string text)
    {
        var path = Path.Combine(_dir, name);
        File.WriteAllText(path, text);
        return path;
    }

    [Fact]
    public async Task Valid_examples_print_each_policy_with_its_next_fire_times()
    {
        var (code, stdout, _) = await Backupd("policy", "check", Examples, "--after", "2026-11-26T12:00:00Z");
        Assert.Equal(0, code);
        Assert.Contains("3 policies in 2 files: OK", stdout, StringComparison.Ordinal);
        Assert.Contains("  schedule    daily 01:30  (0 30 1 * * ?)  [Europe/Berlin]", stdout, StringComparison.Ordinal);
        Assert.Contains("  next        2026-11-27 01:30:00 +01:00 (Fri)", stdout, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Selected_domains_come_from_the_policy_connection()
    {
        // libvirt's built-in test driver always has exactly one domain, named "test".
        var file = Write("t.yaml", "name: t\nconnection: test:///default\ndomains: ['t*', nomatch]\nschedule: hourly\nrepository: /r\n");
        var (code, stdout, stderr) = await Backupd("policy", "check", file);
        Assert.True(code == 0, stderr);
        Assert.Contains("  selected    test" + Environment.NewLine, stdout, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Errors_are_printed_with_position_and_exit_2()
    {
        var bad = Write("bad.yaml", "name: x\ndomains: []\nschedule: daily 25:00\nrepository: /r\n");
        var (code, stdout, _) = await Backupd("policy", "check", bad);
        Assert.Equal(2, code);
        Assert.Contains($"{bad}:2:10: error: 'domains' expects a domain name or glob or a list of them, got an empty list", stdout, StringComparison.Ordinal);
        Assert.Contains($"{bad}:3:11: error: 'schedule' entry 'daily 25:00': expected 'daily' or 'daily HH:MM' (24-hour clock)", stdout, StringComparison.Ordinal);
        Assert.Contains("2 errors in 1 of 1 files", stdout, StringComparison.Ordinal);
    }

    [Fact]
    public async Task The_full_read_period_and_the_copies_are_printed_as_text_and_json()
    {
        var file = Write("copies.yaml", """
            name: offsite
            domains: [web-*]
            repository: /srv/backup/web
            schedule: daily 01:30
            retention: {keep-daily: 7}
            full-every: {backups: 10, days: 14}
            copies:
              - to: ssh://backupd@nas.example/srv/copies
                retention: {keep-daily: 14}
                bandwidth: 20MiB/s
                retries: 5
              - to: /mnt/usb/copies
            """);
        var (code, stdout, stderr) = await Backupd("policy", "check", file, "--after", "2026-11-26T12:00:00Z");
        Assert.True(code == 0, stderr + stdout);
        Assert.Contains("  full read   every 10th backup or after 14 days, whichever comes first", stdout, StringComparison.Ordinal);
        Assert.Contains("  copy to     ssh://backupd@nas.example/srv/copies  (retention keep-daily 14; 5 retries, 20 MiB/s)", stdout, StringComparison.Ordinal);
        Assert.Contains("  copy to     /mnt/usb/copies  (retention keep all; 3 retries)", stdout, StringComparison.Ordinal);
        var (_, defaults, _) = await Backupd("policy", "check", Path.Combine(Examples, "10-web.yaml"), "--after", "2026-11-26T12:00:00Z");
        Assert.Contains("  full read   every 7th backup of a disk", defaults, StringComparison.Ordinal);
        Assert.DoesNotContain("copy to", defaults, StringComparison.Ordinal);
        var second = Write("second.yaml", "name: s\ndomains: [a]\nrepository: /r\nschedule: daily 01:30\nretention: {keep-daily: 7}\nfull-every: 2\n");
        var (_, secondText, _) = await Backupd("policy", "check", second, "--after", "2026-11-26T12:00:00Z");
        Assert.Contains("  full read   every 2nd backup of a disk", secondText, StringComparison.Ordinal);

        var (_, json, _) = await Backupd("policy", "check", file, "--json", "--after", "2026-11-26T12:00:00Z");
        var policy = Assert.Single(JsonDocument.Parse(json).RootElement.GetProperty("policies").EnumerateArray());
        Assert.Equal(10, policy.GetProperty("fullEvery").GetProperty("backups").GetInt32());
        Assert.Equal(14, policy.GetProperty("fullEvery").GetProperty("days").GetInt32());
        var copies = policy.GetProperty("copies").EnumerateArray().ToList();
        Assert.Equal(["ssh://backupd@nas.example/srv/copies", "/mnt/usb/copies"], copies.Select(c => c.GetProperty("target").GetString()));
        Assert.Equal(20L << 20, copies[0].GetProperty("bandwidth").GetInt64());
        Assert.Equal(JsonValueKind.Null, copies[1].GetProperty("bandwidth").ValueKind);
    }

    [Fact]
    public async Task Json_output_carries_errors_policies_and_fire_times()
    {
        var bad = Write("bad.yaml", "name: x\ndomains: [a]\nschedule: hourly\nrepository: /r\nretention: {keep-daily: -1}\n");
        var (code, stdout, _) = await Backupd("policy", "check", bad, Path.Combine(Examples, "20-database.yaml"), "--json", "--after", "2026-11-26T12:00:00Z");
        Assert.Equal(2, code);
        using var json = JsonDocument.Parse(stdout);
        var root = json.RootElement;
        Assert.False(root.GetProperty("valid").GetBoolean());
        var error = Assert.Single(root.GetProperty("errors").EnumerateArray());
        Assert.Equal(5, error.GetProperty("line").GetInt32());
        Assert.Equal(25, error.GetProperty("column").GetInt32());
        var policy = Assert.Single(root.GetProperty("policies").EnumerateArray());
        Assert.Equal("databases", policy.GetProperty("name").GetString());
        Assert.Equal(["2026-11-26T18:00:00+00:00", "2026-11-27T00:00:00+00:00", "2026-11-27T06:00:00+00:00"],
            policy.GetProperty("nextFireTimes").EnumerateArray().Select(t => t.GetString()));
    }

    [Fact]
    public async Task Fifos_devices_and_directories_named_like_policies_are_reported_promptly()
    {
        var policies = Directory.CreateDirectory(Path.Combine(_dir, "policies.d")).FullName;
        var fifo = Path.Combine(policies, "a-fifo.yaml");
        using (var mkfifo = Process.Start("mkfifo", [fifo])) await mkfifo.WaitForExitAsync();
        File.CreateSymbolicLink(Path.Combine(policies, "b-zero.yaml"), "/dev/zero");
        Directory.CreateDirectory(Path.Combine(policies, "c-dir.yaml"));
        File.WriteAllText(Path.Combine(policies, "d-ok.yaml"), "name: ok\ndomains: [a]\nschedule: hourly\nrepository: /srv/a\n");
        var clock = Stopwatch.StartNew();

        // Generous for a loaded machine; a FIFO used to block forever, /dev/zero to grow the process to gigabytes.
        var (code, stdout, _) = await Backupd(TimeSpan.FromSeconds(60), "policy", "check", policies, "--json");

        Assert.Equal(2, code);
        var errors = JsonDocument.Parse(stdout).RootElement.GetProperty("errors").EnumerateArray()
            .ToDictionary(e => Path.GetFileName(e.GetProperty("file").GetString()!), e => e.GetProperty("message").GetString());
        Assert.Equal("is a FIFO (named pipe), not a regular file; only regular files are read", errors["a-fifo.yaml"]);
        Assert.Equal("is a character device, not a regular file; only regular files are read", errors["b-zero.yaml"]);
        Assert.Equal("is a directory, not a regular file; only regular files are read", errors["c-dir.yaml"]);
        Assert.Equal(3, errors.Count);
        Assert.True(clock.Elapsed < TimeSpan.FromSeconds(60), $"took {clock.Elapsed}");
    }

    [Fact]
    public async Task A_configuration_nested_100000_deep_is_an_error_not_a_crash()
    {
        var config = Write("backupd.yaml", "state-directory: /x\npolicies-directory: " + new string('[', 100_000) + new string(']', 100_000) + "\n");

        var (code, _, stderr) = await Backupd(TimeSpan.FromSeconds(60), "--config", config, "policy", "check");

        Assert.Equal(2, code); // not 134 (SIGABRT after a stack overflow)
        Assert.Contains($"{config}:2:", stderr, StringComparison.Ordinal);
        Assert.Contains("nesting deeper than 64 levels", stderr, StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_missing_file_exits_3()
    {
        var (code, _, stderr) = await Backupd("policy", "check", Path.Combine(_dir, "nope.yaml"));
        Assert.Equal(3, code);
        Assert.Contains("nope.yaml: no such file or directory", stderr, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Without_files_the_configured_policies_directory_is_checked()
    {
        Directory.CreateDirectory(Path.Combine(_dir, "policies.d"));
        Write("policies.d/a.yaml", "name: a\ndomains: [a]\nschedule: every 15m\nrepository: /r\n");
        var config = Write("backupd.yaml", "catalog-connection: Host=127.0.0.1\nstate-directory: state\npolicies-directory: policies.d\n");
        var (code, stdout, stderr) = await Backupd("--config", config, "policy", "check");
        Assert.True(code == 0, stderr);
        Assert.Contains("1 policies in 1 files: OK", stdout, StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_notify_name_that_is_not_a_configured_target_is_refused_with_file_line_and_suggestion()
    {
        Directory.CreateDirectory(Path.Combine(_dir, "policies.d"));
        var policy = Write("policies.d/a.yaml", "name: a\ndomains: [a]\nschedule: every 15m\nrepository: /r\nnotify: [ops-hok]\n");
        var config = Write("backupd.yaml", "catalog-connection: Host=127.0.0.1\nstate-directory: state\npolicies-directory: policies.d\n" +
            "notify:\n  ops-hook:\n    webhook: http://127.0.0.1:9/hook\n");
        var (code, stdout, _) = await Backupd("--config", config, "policy", "check");
        Assert.Equal(2, code);
        Assert.Contains($"{policy}:5:10: error: 'notify' of policy 'a' names 'ops-hok', which is not a notify target of the daemon configuration (did you mean 'ops-hook'?); targets: ops-hook",
            stdout, StringComparison.Ordinal);

        File.WriteAllText(policy, "name: a\ndomains: [a]\nschedule: every 15m\nrepository: /r\nnotify: [ops-hook]\n");
        var fixedRun = await Backupd("--config", config, "policy", "check");
        Assert.True(fixedRun.Code == 0, fixedRun.Stdout + fixedRun.Stderr);
    }

    [Fact]
    public void Selected_domains_are_listed_when_the_hypervisor_can_be_asked()
    {
        var set = PolicyLoader.LoadFiles([Path.Combine(Examples, "10-web.yaml")]);
        var report = PolicyCheckReport.Build(set, DateTimeOffset.UnixEpoch, "qemu:///system",
            uri => uri == "qemu:///system" ? ["web-1", "web-test1", "proxy1", "db1"] : null);
        Assert.Equal(["web-1", "proxy1"], report.Policies[0].SelectedDomains);
        Assert.Equal(["web-1", "web-test1"], report.Policies[1].SelectedDomains);
    }
}
