using System.Net;
using Backupd.Daemon.Configuration;
using Backupd.Policies.Loading;
using Backupd.Policies.Yaml;

namespace Backupd.Daemon.Web;

/// <summary>
/// The daemon's HTTP listener (metrics, status page, JSON API): the `http:` section of the configuration.
/// No section: no listener. A section without `listen`: 127.0.0.1:9105. A bind that is not loopback needs a
/// credential file (a bearer token, or `user:password` for basic auth), else the configuration is refused.
/// </summary>
public sealed record HttpSettings(IPEndPoint Listen, string? CredentialFile, HttpCredential? Credential)
{
    public const string DefaultListen = "127.0.0.1:9105";
    private static readonly string[] Keys = ["listen", "credential-file"];

    public bool IsLoopback => IPAddress.IsLoopback(Listen.Address);

    internal static HttpSettings? Parse(string path, YMapping mapping, List<string> errors)
    {
        var section = new ConfigSection(path, "'http'", mapping, Keys, errors);
        var listenText = section.Text("listen") ?? DefaultListen;
        if (!IPEndPoint.TryParse(listenText, out var listen) || listen.Port == 0 || !listenText.Contains(':', StringComparison.Ordinal))
        {
            section.Error("listen", $"'listen' expects ADDRESS:PORT such as {DefaultListen} or [::1]:9105, got '{listenText}'");
            return null;
        }
        var credentialFile = section.FilePath("credential-file");
        HttpCredential? credential = null;
        if (credentialFile is not null)
        {
            try { credential = HttpCredential.Parse(RegularFile.ReadAllText(credentialFile, ConfigLoader.MaxFileBytes)); }
            catch (FileRefusedException e) { section.Error("credential-file", $"'credential-file' cannot be read: {e.Message}"); return null; }
            if (credential is null) { section.Error("credential-file", $"'credential-file' {credentialFile} is empty: expected a token, or user:password for basic auth"); return null; }
        }
        if (!IPAddress.IsLoopback(listen.Address) && credential is null)
        {
            section.Error("listen", $"'listen' {listenText} is reachable from other hosts: give 'credential-file' (a token, or user:password) or bind to 127.0.0.1");
            return null;
        }
        return new HttpSettings(listen, credentialFile, credential);
    }
}

/// <summary>What a request must present: `Authorization: Bearer TOKEN`, or basic auth when the file holds user:password.</summary>
public sealed record HttpCredential(string? User, string Secret)
{
    public static HttpCredential? Parse(string text)
    {
        var line = text.Trim();
        if (line.Length == 0) return null;
        var colon = line.IndexOf(':', StringComparison.Ordinal);
        return colon > 0 ? new HttpCredential(line[..colon], line[(colon + 1)..]) : new HttpCredential(null, line);
    }

    /// <summary>Constant-time check of an Authorization header value.</summary>
    public bool Accepts(string? authorization)
    {
        if (authorization is null) return false;
        string expected = User is null
            ? "Bearer " + Secret
            : "Basic " + Convert.ToBase64String(System.Text.Encoding.UTF8.GetBytes($"{User}:{Secret}"));
        var a = System.Text.Encoding.UTF8.GetBytes(authorization.Trim());
        var b = System.Text.Encoding.UTF8.GetBytes(expected);
        return System.Security.Cryptography.CryptographicOperations.FixedTimeEquals(a, b);
    }
}
