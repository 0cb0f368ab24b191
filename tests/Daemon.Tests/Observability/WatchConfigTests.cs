using Backupd.Daemon.Configuration;
using Backupd.Daemon.Notifications;

namespace Backupd.Daemon.Tests.Observability;

/// <summary>The configuration's http: and notify: sections: defaults, the non-loopback rule, errors with file:line:column.</summary>
public sealed class WatchConfigTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("bkd-watchcfg-").FullName;
    private string ConfigPath => Path.Combine(_dir, "backupd.yaml");

    private const string Minimal = """
        catalog-connection: "Host=/run/postgresql;Database=backupd"
        state-directory: /var/lib/backupd
        policies-directory: policies.d

        """;

    private DaemonConfig Parse(string extra) => ConfigLoader.Parse(Minimal + extra, ConfigPath, credentialsDirectory: null);

    private string Error(string extra) => Assert.Throws<ConfigException>(() => Parse(extra)).Message;

    [Fact]
    public void No_http_section_means_no_listener_and_an_empty_section_listens_on_localhost_9105()
    {
        Assert.Null(Parse("").Http);
        var http = Parse("http:\n  listen: 127.0.0.1:9105\n").Http!;
        Assert.Equal("127.0.0.1:9105", http.Listen.ToString());
        Assert.True(http.IsLoopback);
        Assert.Equal("[::1]:9200", Parse("http:\n  listen: \"[::1]:9200\"\n").Http!.Listen.ToString());
    }

    [Fact]
    public void A_bind_reachable_from_other_hosts_needs_a_credential_file()
    {
        var message = Error("http:\n  listen: 0.0.0.0:9105\n");
        Assert.Contains($"{ConfigPath}:5:11: 'listen' 0.0.0.0:9105 is reachable from other hosts", message);

        File.WriteAllText(Path.Combine(_dir, "http.credential"), "prometheus:s3cret\n");
        var http = Parse("http:\n  listen: 0.0.0.0:9105\n  credential-file: http.credential\n").Http!;
        Assert.Equal("prometheus", http.Credential!.User);
        Assert.True(http.Credential.Accepts("Basic " + Convert.ToBase64String("prometheus:s3cret"u8.ToArray())));
        Assert.False(http.Credential.Accepts("Basic " + Convert.ToBase64String("prometheus:wrong"u8.ToArray())));
        Assert.False(http.Credential.Accepts(null));

        File.WriteAllText(Path.Combine(_dir, "token"), "abc123\n");
        var bearer = Parse("http:\n  listen: 10.0.0.1:9105\n  credential-file: token\n").Http!.Credential!;
        Assert.True(bearer.Accepts("Bearer abc123"));
        Assert.False(bearer.Accepts("Bearer abc12"));
    }

    [Fact]
    public void Stale_check_defaults_to_five_minutes_and_takes_1s_to_1h()
    {
        Assert.Equal(TimeSpan.FromMinutes(5), Parse("").StaleCheck);
        Assert.Equal(TimeSpan.FromSeconds(2), Parse("stale-check: 2s\n").StaleCheck);
        Assert.Contains($"{ConfigPath}:4:14: 'stale-check' expects a duration from 1s to 1h, got '2h'", Error("stale-check: 2h\n"));
    }

    [Fact]
    public void Misspelt_keys_and_bad_values_are_reported_with_position_and_a_suggestion()
    {
        Assert.Contains($"{ConfigPath}:5:3: unknown key 'lisen' in 'http' (did you mean 'listen'?)", Error("http:\n  lisen: 127.0.0.1:9105\n"));
        Assert.Contains($"{ConfigPath}:5:11: 'listen' expects ADDRESS:PORT", Error("http:\n  listen: localhost\n"));
        Assert.Contains($"{ConfigPath}:4:7: 'http' expects a mapping", Error("http: on\n"));
        var notify = Error("notify:\n  ops:\n    webhok: http://x/\n");
        Assert.Contains($"{ConfigPath}:6:5: unknown key 'webhok' in notify target 'ops' (did you mean 'webhook'?)", notify);
        Assert.Contains("notify target 'ops' needs exactly one of 'webhook: URL' or 'email: ADDRESS'", notify);
        Assert.Contains("'events' of notify target 'ops' expects some of failure, recovered, stale, damage, merge-back, got 'fail'",
            Error("notify:\n  ops:\n    webhook: http://x/\n    events: [fail]\n"));
        Assert.Contains("'webhook' expects an http:// or https:// URL, got 'ftp://x/'", Error("notify:\n  ops:\n    webhook: ftp://x/\n"));
    }

    [Fact]
    public void Notify_targets_read_their_secrets_from_files()
    {
        File.WriteAllText(Path.Combine(_dir, "hook.secret"), "hmac-key\n");
        File.WriteAllText(Path.Combine(_dir, "smtp.credential"), "backupd:mail-pass\n");
        var config = Parse("""
            notify:
              hook:
                webhook: https://hooks.example.org/backupd
                secret-file: hook.secret
                events: [failure, damage]
                retries: 5
              mail:
                email: ops@example.org
                smtp: mail.example.org:587
                credential-file: smtp.credential
                scope: named
            """);
        var hook = Assert.IsType<WebhookTarget>(config.Notify[0]);
        Assert.Equal("hmac-key", hook.Secret);
        Assert.Equal(5, hook.Retries);
        Assert.Equal(new HashSet<NotifyEvent> { NotifyEvent.Failure, NotifyEvent.Damage }, hook.Events);
        Assert.True(hook.AllPolicies);
        var mail = Assert.IsType<EmailTarget>(config.Notify[1]);
        Assert.Equal(("mail.example.org", 587, "starttls"), (mail.Host, mail.Port, mail.Tls));
        Assert.Equal(("backupd", "mail-pass"), mail.Login);
        Assert.False(mail.AllPolicies);
        Assert.Contains("'credential-file' cannot be read", Error("notify:\n  m:\n    email: a@b.org\n    credential-file: missing\n"));
    }

    [Fact]
    public void The_shipped_example_configuration_still_loads()
    {
        var dir = AppContext.BaseDirectory;
        while (!File.Exists(Path.Combine(dir, "BackupDaemon.sln"))) dir = Path.GetDirectoryName(dir)!;
        var example = Path.Combine(dir, "config", "backupd.yaml");
        var config = ConfigLoader.Parse(File.ReadAllText(example), example, credentialsDirectory: null);
        Assert.Equal("127.0.0.1:9105", config.Http!.Listen.ToString());
    }

    public void Dispose() => Directory.Delete(_dir, recursive: true);
}
