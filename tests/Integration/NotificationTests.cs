using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using Backupd.Integration.Fixtures;

namespace Backupd.Integration;

/// <summary>`backupd notify test` against a real SMTP server (aiosmtpd: STARTTLS + AUTH required) and a local HTTP receiver.</summary>
[Trait("Category", "Integration")]
public sealed class NotificationTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("bkd-notify-").FullName;

    private string Config(string notify)
    {
        var path = Path.Combine(_dir, "backupd.yaml");
        File.WriteAllText(path, $"catalog-connection: \"Host=127.0.0.1;Database=unused\"\nstate-directory: {_dir}/state\npolicies-directory: {_dir}/p\nnotify:\n{notify}");
        return path;
    }

    [Fact]
    public async Task Webhook_is_signed_and_retried_after_a_server_error()
    {
        using var receiver = new WebhookReceiver(503, 502);
        File.WriteAllText(Path.Combine(_dir, "hook.secret"), "the-hmac-key\n");
        var config = Config($"  hook:\n    webhook: {receiver.Url}\n    secret-file: hook.secret\n    retries: 3\n");

        var (exit, stdout, stderr) = await BackupdProcess.RunAsync("--config", config, "notify", "test", "hook", "--json");

        Assert.True(exit == 0, stderr + stdout);
        var result = JsonDocument.Parse(stdout).RootElement;
        Assert.Equal(0, result.GetProperty("failed").GetInt32());
        Assert.True(result.GetProperty("targets")[0].GetProperty("delivered").GetBoolean());
        var requests = receiver.Requests.ToArray();
        Assert.Equal(3, requests.Length); // 503, 502, then 200
        Assert.True(requests[2].At - requests[1].At >= TimeSpan.FromSeconds(1.5), "the second retry waits twice the first");
        foreach (var r in requests)
        {
            var expected = "sha256=" + Convert.ToHexStringLower(HMACSHA256.HashData("the-hmac-key"u8, Encoding.UTF8.GetBytes(r.Body)));
            Assert.Equal(expected, r.Headers["X-Backupd-Signature"]);
            Assert.Equal("test", r.Headers["X-Backupd-Event"]);
        }
        var body = JsonDocument.Parse(requests[2].Body).RootElement;
        Assert.Equal("test", body.GetProperty("event").GetString());
        Assert.Equal(Environment.MachineName, body.GetProperty("host").GetString());
    }

    [Fact]
    public async Task Webhook_that_keeps_failing_is_reported_and_a_client_error_is_not_retried()
    {
        using var receiver = new WebhookReceiver(404, 404, 404);
        var config = Config($"  hook:\n    webhook: {receiver.Url}\n    retries: 2\n");

        var (exit, stdout, _) = await BackupdProcess.RunAsync("--config", config, "notify", "test");

        Assert.Equal(1, exit);
        Assert.Contains("hook: NOT delivered:", stdout, StringComparison.Ordinal);
        Assert.Contains("404", stdout, StringComparison.Ordinal);
        Assert.Single(receiver.Requests);
    }

    [Fact]
    public async Task Email_goes_through_starttls_with_the_login_from_the_credential_file()
    {
        await using var smtp = await SmtpServer.StartAsync();
        File.WriteAllText(Path.Combine(_dir, "smtp.credential"), $"{SmtpServer.User}:{SmtpServer.Password}\n");
        var config = Config($"  mail:\n    email: ops@example.org\n    from: backupd@example.org\n    smtp: 127.0.0.1:{smtp.Port}\n" +
            $"    credential-file: smtp.credential\n    ca-file: {smtp.CertificateFile}\n");

        var (exit, stdout, stderr) = await BackupdProcess.RunAsync("--config", config, "notify", "test", "mail");

        Assert.True(exit == 0, stderr + stdout);
        Assert.Contains("mail: delivered", stdout, StringComparison.Ordinal);
        var mail = smtp.Mail();
        Assert.Contains($"LOGIN {SmtpServer.User}\nTLS yes\nRCPT ops@example.org\n", mail, StringComparison.Ordinal);
        Assert.Contains("Subject: [backupd", mail, StringComparison.Ordinal);
        Assert.Contains("event: test", mail, StringComparison.Ordinal);

        // A wrong password is refused by the server: not delivered, exit 1, nothing more in the mailbox.
        File.WriteAllText(Path.Combine(_dir, "smtp.credential"), $"{SmtpServer.User}:wrong\n");
        var refused = await BackupdProcess.RunAsync("--config", config, "notify", "test", "mail");
        Assert.Equal(1, refused.ExitCode);
        Assert.Contains("mail: NOT delivered", refused.Stdout, StringComparison.Ordinal);
        Assert.Equal(mail, smtp.Mail());
    }

    [Fact]
    public async Task Unknown_target_is_not_found()
    {
        var config = Config("  hook:\n    webhook: http://127.0.0.1:9/x\n");
        var (exit, stdout, _) = await BackupdProcess.RunAsync("--config", config, "notify", "test", "nosuch", "--json");
        Assert.Equal(3, exit);
        Assert.Contains("no notify target 'nosuch' (configured: hook)", JsonDocument.Parse(stdout).RootElement.GetProperty("error").GetString(), StringComparison.Ordinal);
    }

    public void Dispose() => Directory.Delete(_dir, recursive: true);
}
