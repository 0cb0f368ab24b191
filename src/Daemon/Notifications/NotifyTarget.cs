using System.Globalization;
using System.Text.RegularExpressions;
using Backupd.Daemon.Configuration;
using Backupd.Policies.Loading;
using Backupd.Policies.Yaml;

namespace Backupd.Daemon.Notifications;

/// <summary>Why a notification is sent.</summary>
public enum NotifyEvent { Failure, Recovered, Stale, Damage, MergeBack, Test }

/// <summary>
/// A named target from the configuration's `notify:` section: a webhook or an e-mail address. Secrets (HMAC key,
/// SMTP password) come from files so the configuration can stay world-readable. Scope `all` (the default) gets
/// every policy's events; `named` only those of policies whose `notify:` lists it.
/// </summary>
public abstract record NotifyTarget(string Name, IReadOnlySet<NotifyEvent> Events, bool AllPolicies)
{
    public static readonly IReadOnlySet<NotifyEvent> AllEvents =
        new HashSet<NotifyEvent> { NotifyEvent.Failure, NotifyEvent.Recovered, NotifyEvent.Stale, NotifyEvent.Damage, NotifyEvent.MergeBack };

    private static readonly string[] Keys =
        ["webhook", "secret-file", "retries", "email", "from", "smtp", "tls", "credential-file", "ca-file", "events", "scope"];

    internal static IReadOnlyList<NotifyTarget> ParseAll(string path, YMapping mapping, List<string> errors)
    {
        var targets = new List<NotifyTarget>();
        foreach (var (key, value) in mapping.Entries)
        {
            if (!Regex.IsMatch(key.Value, "^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$"))
                errors.Add($"{path}:{key.Line}:{key.Column}: notify target name '{key.Value}' expects 1-64 letters, digits, '.', '_' or '-'");
            else if (targets.Any(t => t.Name == key.Value))
                errors.Add($"{path}:{key.Line}:{key.Column}: notify target '{key.Value}' is given twice");
            else if (value is not YMapping body)
                errors.Add($"{path}:{value.Line}:{value.Column}: notify target '{key.Value}' expects a mapping with 'webhook: URL' or 'email: ADDRESS'");
            else if (Parse(key.Value, new ConfigSection(path, $"notify target '{key.Value}'", body, Keys, errors), body) is { } target)
                targets.Add(target);
        }
        return targets;
    }

    private static NotifyTarget? Parse(string name, ConfigSection s, YMapping body)
    {
        var before = s.Errors.Count;
        var events = AllEvents;
        if (s.Text("events") is { } list)
        {
            var set = new HashSet<NotifyEvent>();
            foreach (var word in list.Split(',', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries))
            {
                if (EventNames.TryGetValue(word, out var e)) set.Add(e);
                else s.Error("events", $"'events' of notify target '{name}' expects some of {string.Join(", ", EventNames.Keys)}, got '{word}'");
            }
            events = set;
        }
        var scope = s.Text("scope") ?? "all";
        if (scope is not ("all" or "named")) s.Error("scope", $"'scope' expects 'all' (every policy) or 'named' (policies whose notify: lists it), got '{scope}'");

        var webhook = s.Text("webhook");
        var email = s.Text("email");
        if ((webhook is null) == (email is null))
        {
            s.Errors.Add($"{s.At(body)}: notify target '{name}' needs exactly one of 'webhook: URL' or 'email: ADDRESS'");
            return null;
        }
        if (webhook is not null)
        {
            if (!Uri.TryCreate(webhook, UriKind.Absolute, out var url) || url.Scheme is not ("http" or "https"))
                s.Error("webhook", $"'webhook' expects an http:// or https:// URL, got '{webhook}'");
            var secret = s.FilePath("secret-file") is { } secretFile ? ReadSecret(s, "secret-file", secretFile) : null;
            var retries = 3;
            if (s.Text("retries") is { } r && !(int.TryParse(r, NumberStyles.None, CultureInfo.InvariantCulture, out retries) && retries <= 10))
                s.Error("retries", $"'retries' expects a whole number from 0 to 10, got '{r}'");
            return s.Errors.Count > before ? null : new WebhookTarget(name, events, scope == "all", new Uri(webhook), secret, retries);
        }
        if (!MimeKit.MailboxAddress.TryParse(email, out var to)) s.Error("email", $"'email' expects an address like ops@example.org, got '{email}'");
        var from = s.Text("from") ?? $"backupd@{Environment.MachineName}";
        if (!MimeKit.MailboxAddress.TryParse(from, out _)) s.Error("from", $"'from' expects an address, got '{from}'");
        var smtp = s.Text("smtp") ?? "localhost:25";
        var colon = smtp.LastIndexOf(':');
        var port = 25;
        if (colon <= 0 || !int.TryParse(smtp[(colon + 1)..], NumberStyles.None, CultureInfo.InvariantCulture, out port) || port is < 1 or > 65535)
            s.Error("smtp", $"'smtp' expects HOST:PORT such as mail.example.org:587, got '{smtp}'");
        var tls = s.Text("tls") ?? "starttls";
        if (tls is not ("starttls" or "tls" or "none")) s.Error("tls", $"'tls' expects starttls (the default), tls or none, got '{tls}'");
        (string User, string Password)? login = null;
        if (s.FilePath("credential-file") is { } credentialFile && ReadSecret(s, "credential-file", credentialFile) is { } credential)
        {
            var split = credential.IndexOf(':', StringComparison.Ordinal);
            if (split <= 0) s.Error("credential-file", $"'credential-file' {credentialFile} expects one line user:password");
            else login = (credential[..split], credential[(split + 1)..]);
        }
        var ca = s.FilePath("ca-file");
        if (ca is not null && !File.Exists(ca)) s.Error("ca-file", $"'ca-file' {ca} does not exist");
        return s.Errors.Count > before ? null
            : new EmailTarget(name, events, scope == "all", email!, from, smtp[..Math.Max(colon, 0)], port, tls, login, ca);
    }

    private static string? ReadSecret(ConfigSection s, string key, string file)
    {
        try
        {
            var text = RegularFile.ReadAllText(file, ConfigLoader.MaxFileBytes).Trim();
            if (text.Length > 0) return text;
            s.Error(key, $"'{key}' {file} is empty");
        }
        catch (FileRefusedException e) { s.Error(key, $"'{key}' cannot be read: {e.Message}"); }
        return null;
    }

    public static readonly IReadOnlyDictionary<string, NotifyEvent> EventNames = new Dictionary<string, NotifyEvent>
    {
        ["failure"] = NotifyEvent.Failure, ["recovered"] = NotifyEvent.Recovered, ["stale"] = NotifyEvent.Stale,
        ["damage"] = NotifyEvent.Damage, ["merge-back"] = NotifyEvent.MergeBack,
    };

    public static string NameOf(NotifyEvent e) => e == NotifyEvent.Test ? "test" : EventNames.First(p => p.Value == e).Key;
}

/// <summary>POSTs the notification as JSON; with a secret, `X-Backupd-Signature: sha256=HEX` is the HMAC-SHA256 of the body.</summary>
public sealed record WebhookTarget(string Name, IReadOnlySet<NotifyEvent> Events, bool AllPolicies, Uri Url, string? Secret, int Retries)
    : NotifyTarget(Name, Events, AllPolicies);

/// <summary>Sends a plain-text mail through SMTP (STARTTLS by default; login from a user:password file; ca-file trusts a private CA).</summary>
public sealed record EmailTarget(string Name, IReadOnlySet<NotifyEvent> Events, bool AllPolicies, string To, string From, string Host, int Port,
    string Tls, (string User, string Password)? Login, string? CaFile) : NotifyTarget(Name, Events, AllPolicies);
