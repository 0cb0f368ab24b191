using System.Net;
using System.Net.Http.Headers;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using System.Text;
using System.Text.Json;
using MailKit.Net.Smtp;
using MailKit.Security;
using Microsoft.Extensions.Logging;
using MimeKit;

namespace Backupd.Daemon.Notifications;

/// <summary>Delivers a <see cref="Notification"/> to one target; throws when every attempt failed.</summary>
public sealed class Notifier(HttpClient http, ILogger log)
{
    public const string SignatureHeader = "X-Backupd-Signature";
    public const string EventHeader = "X-Backupd-Event";

    /// <summary>First retry delay; doubled for each further attempt (1 s, 2 s, 4 s ...).</summary>
    public TimeSpan RetryBase { get; init; } = TimeSpan.FromSeconds(1);

    private static readonly JsonSerializerOptions Json = new(JsonSerializerDefaults.Web);

    public Task SendAsync(NotifyTarget target, Notification message, CancellationToken ct) => target switch
    {
        WebhookTarget hook => PostAsync(hook, message, ct),
        EmailTarget mail => MailAsync(mail, message, ct),
        _ => throw new NotSupportedException(target.GetType().Name),
    };

    /// <summary>The webhook body; its HMAC-SHA256 with the target's secret, hex, goes in <see cref="SignatureHeader"/> as sha256=HEX.</summary>
    public static byte[] Body(Notification m) => JsonSerializer.SerializeToUtf8Bytes(new
    {
        @event = m.EventName, subject = m.Subject, text = m.Text, domain = m.Domain, policy = m.Policy, host = m.Host, at = m.At,
    }, Json);

    public static string Signature(string secret, byte[] body) =>
        "sha256=" + Convert.ToHexStringLower(HMACSHA256.HashData(Encoding.UTF8.GetBytes(secret), body));

    private async Task PostAsync(WebhookTarget hook, Notification message, CancellationToken ct)
    {
        var body = Body(message);
        for (var attempt = 1; ; attempt++)
        {
            try
            {
                using var request = new HttpRequestMessage(HttpMethod.Post, hook.Url) { Content = new ByteArrayContent(body) };
                request.Content.Headers.ContentType = new MediaTypeHeaderValue("application/json");
                request.Headers.Add(EventHeader, message.EventName);
                if (hook.Secret is not null) request.Headers.Add(SignatureHeader, Signature(hook.Secret, body));
                using var response = await http.SendAsync(request, ct);
                if (response.IsSuccessStatusCode) return;
                var error = new HttpRequestException($"{hook.Url} answered {(int)response.StatusCode} {response.ReasonPhrase}", null, response.StatusCode);
                // A 4xx other than 408/429 will not change by asking again (a wrong URL or a rejected signature).
                if ((int)response.StatusCode is >= 400 and < 500 and not 408 and not 429) throw error;
                throw new RetryableException(error);
            }
            catch (Exception e) when (attempt <= hook.Retries && !ct.IsCancellationRequested && e is RetryableException or HttpRequestException { StatusCode: null } or TaskCanceledException)
            {
                var delay = RetryBase * Math.Pow(2, attempt - 1);
                log.NotificationRetry(hook.Name, attempt, delay, e);
                await Task.Delay(delay, ct);
            }
            catch (RetryableException e) { throw e.InnerException!; }
        }
    }

    private sealed class RetryableException(Exception inner) : Exception(inner.Message, inner);

    private static async Task MailAsync(EmailTarget mail, Notification message, CancellationToken ct)
    {
        var mime = new MimeMessage();
        mime.From.Add(MailboxAddress.Parse(mail.From));
        mime.To.Add(MailboxAddress.Parse(mail.To));
        mime.Subject = $"[backupd {message.Host}] {message.Subject}";
        mime.Headers.Add(EventHeader, message.EventName);
        mime.Body = new TextPart("plain") { Text = $"{message.Text}\n\nevent: {message.EventName}\nhost: {message.Host}\ndomain: {message.Domain ?? "-"}\npolicy: {message.Policy ?? "-"}\nat: {message.At:u}\n" };

        using var smtp = new SmtpClient { Timeout = 30_000 };
        if (mail.CaFile is not null)
        {
            // A private CA (or the server's own certificate) named in the configuration is the only trust anchor.
            var anchor = X509CertificateLoader.LoadCertificateFromFile(mail.CaFile);
            smtp.ServerCertificateValidationCallback = (_, certificate, _, errors) =>
            {
                // The name must still match; only the trust anchor is replaced.
                if (certificate is null || errors.HasFlag(System.Net.Security.SslPolicyErrors.RemoteCertificateNameMismatch)) return false;
                using var chain = new X509Chain();
                chain.ChainPolicy.TrustMode = X509ChainTrustMode.CustomRootTrust;
                chain.ChainPolicy.CustomTrustStore.Add(anchor);
                chain.ChainPolicy.RevocationMode = X509RevocationMode.NoCheck;
                using var leaf = new X509Certificate2(certificate);
                return chain.Build(leaf);
            };
        }
        var security = mail.Tls switch { "tls" => SecureSocketOptions.SslOnConnect, "none" => SecureSocketOptions.None, _ => SecureSocketOptions.StartTls };
        await smtp.ConnectAsync(mail.Host, mail.Port, security, ct);
        if (mail.Login is { } login) await smtp.AuthenticateAsync(new NetworkCredential(login.User, login.Password), ct);
        await smtp.SendAsync(mime, ct);
        await smtp.DisconnectAsync(quit: true, ct);
    }
}
