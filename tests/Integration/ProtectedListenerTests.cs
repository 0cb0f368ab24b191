using System.Net;
using System.Net.Http.Headers;
using System.Text;
using System.Text.Json;
using Backupd.Integration.Fixtures;
using static Backupd.Integration.Fixtures.Eventually;

namespace Backupd.Integration;

/// <summary>
/// The daemon's HTTP listener bound to every address (0.0.0.0, reachable from other hosts): refused at start-up
/// without a credential file; with one, every route answers 401 without or with a wrong credential and 200 with
/// the right one (basic auth from user:password, a bearer token from a one-word file).
/// </summary>
[Trait("Category", "Integration")]
public sealed class ProtectedListenerTests(PostgresDatabase database) : IClassFixture<PostgresDatabase>
{
    [Fact]
    public async Task A_non_loopback_listener_without_a_credential_file_is_refused_at_start_up()
    {
        var port = WebhookReceiver.FreePort();
        using var config = new TempConfig(database.ConnectionString, $"http:\n  listen: 0.0.0.0:{port}\n");

        var (exit, _, stderr) = await BackupdProcess.RunAsync("--config", config.Path, "daemon");

        Assert.Equal(2, exit);
        Assert.Contains($"'listen' 0.0.0.0:{port} is reachable from other hosts: give 'credential-file'", stderr, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Basic_auth_answers_401_without_or_with_a_wrong_password_and_200_with_the_right_one()
    {
        await using var daemon = await StartAsync("prometheus:s3cret\n");
        using var http = new HttpClient();

        using (var none = await http.GetAsync(daemon.Url + "api/status"))
        {
            Assert.Equal(HttpStatusCode.Unauthorized, none.StatusCode);
            Assert.Equal("Basic", none.Headers.WwwAuthenticate.Single().Scheme);
        }
        foreach (var wrong in new[] { "prometheus:wrong", "other:s3cret", "prometheus:s3cret2" })
        {
            using var refused = await SendAsync(http, daemon.Url + "metrics", new AuthenticationHeaderValue("Basic", Base64(wrong)));
            Assert.Equal(HttpStatusCode.Unauthorized, refused.StatusCode);
        }
        using (var bearerInstead = await SendAsync(http, daemon.Url + "metrics", new AuthenticationHeaderValue("Bearer", "s3cret")))
            Assert.Equal(HttpStatusCode.Unauthorized, bearerInstead.StatusCode);

        var right = new AuthenticationHeaderValue("Basic", Base64("prometheus:s3cret"));
        using (var metrics = await SendAsync(http, daemon.Url + "metrics", right))
        {
            Assert.Equal(HttpStatusCode.OK, metrics.StatusCode);
            Assert.Contains("backupd_catalog_up 1\n", await metrics.Content.ReadAsStringAsync(), StringComparison.Ordinal);
        }
        using (var status = await SendAsync(http, daemon.Url + "api/status", right))
        {
            Assert.Equal(HttpStatusCode.OK, status.StatusCode);
            Assert.Equal(JsonValueKind.Array, JsonDocument.Parse(await status.Content.ReadAsStringAsync()).RootElement.GetProperty("domains").ValueKind);
        }
        using (var page = await SendAsync(http, daemon.Url, right))
            Assert.Equal(HttpStatusCode.OK, page.StatusCode);
        await daemon.StopAsync();
    }

    [Fact]
    public async Task A_bearer_token_answers_401_without_or_with_a_wrong_token_and_200_with_the_right_one()
    {
        await using var daemon = await StartAsync("k7-token-Zq\n");
        using var http = new HttpClient();

        using (var none = await http.GetAsync(daemon.Url + "metrics"))
        {
            Assert.Equal(HttpStatusCode.Unauthorized, none.StatusCode);
            Assert.Equal("Bearer", none.Headers.WwwAuthenticate.Single().Scheme);
        }
        using (var wrong = await SendAsync(http, daemon.Url + "metrics", new AuthenticationHeaderValue("Bearer", "k7-token-Z")))
            Assert.Equal(HttpStatusCode.Unauthorized, wrong.StatusCode);
        using (var right = await SendAsync(http, daemon.Url + "metrics", new AuthenticationHeaderValue("Bearer", "k7-token-Zq")))
        {
            Assert.Equal(HttpStatusCode.OK, right.StatusCode);
            Assert.Contains("backupd_catalog_up 1\n", await right.Content.ReadAsStringAsync(), StringComparison.Ordinal);
        }
        await daemon.StopAsync();
    }

    private static string Base64(string text) => Convert.ToBase64String(Encoding.UTF8.GetBytes(text));

    private static async Task<HttpResponseMessage> SendAsync(HttpClient http, string url, AuthenticationHeaderValue authorization)
    {
        using var request = new HttpRequestMessage(HttpMethod.Get, url);
        request.Headers.Authorization = authorization;
        return await http.SendAsync(request);
    }

    private sealed class Listening(DaemonNotificationTests.Daemon daemon, TempConfig config, string url) : IAsyncDisposable
    {
        /// <summary>Reached over 127.0.0.1, one of the addresses 0.0.0.0 binds.</summary>
        public string Url { get; } = url;
        public Task StopAsync() => daemon.StopAsync();

        public async ValueTask DisposeAsync()
        {
            await daemon.DisposeAsync();
            config.Dispose();
        }
    }

    private async Task<Listening> StartAsync(string credential)
    {
        var port = WebhookReceiver.FreePort();
        var config = new TempConfig(database.ConnectionString, $"http:\n  listen: 0.0.0.0:{port}\n  credential-file: http.credential\n");
        await File.WriteAllTextAsync(Path.Combine(config.Directory, "http.credential"), credential);
        var daemon = DaemonNotificationTests.Daemon.Start(config, null);
        var listening = new Listening(daemon, config, $"http://127.0.0.1:{port}/");
        try
        {
            await WaitUntilAsync(() => daemon.Output.Any(l => l.Contains($"serving metrics, status page and JSON API on http://0.0.0.0:{port}/", StringComparison.Ordinal)),
                TimeSpan.FromSeconds(60), "the HTTP listener", daemon.Output);
            return listening;
        }
        catch
        {
            await listening.DisposeAsync();
            throw;
        }
    }
}
