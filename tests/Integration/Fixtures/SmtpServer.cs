using System.Diagnostics;

namespace Backupd.Integration.Fixtures;

/// <summary>
/// A real SMTP server (Debian python3-aiosmtpd) on a free loopback port that requires STARTTLS and then AUTH
/// (user backupd, password mail-pass), with a fresh self-signed certificate; every accepted message is appended to
/// <see cref="MailFile"/> with the login it came with and whether TLS was on.
/// </summary>
public sealed class SmtpServer : IAsyncDisposable
{
    public const string User = "backupd";
    public const string Password = "mail-pass";
    private const string Python = "/usr/bin/python3";

    private Process? _process;
    public string Directory { get; } = System.IO.Directory.CreateTempSubdirectory("bkd-smtp-").FullName;
    public int Port { get; } = WebhookReceiver.FreePort();
    public string CertificateFile => Path.Combine(Directory, "cert.pem");
    public string MailFile => Path.Combine(Directory, "mail.txt");

    private const string Script = """
        import ssl, sys
        from aiosmtpd.controller import Controller
        from aiosmtpd.smtp import AuthResult, LoginPassword
        port, cert, key, out = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
        class Handler:
            async def handle_DATA(self, server, session, envelope):
                login = session.auth_data.login.decode() if isinstance(session.auth_data, LoginPassword) else '-'
                with open(out, 'a') as f:
                    f.write(f"LOGIN {login}\nTLS {'yes' if session.ssl else 'no'}\nRCPT {','.join(envelope.rcpt_tos)}\n")
                    f.write(envelope.content.decode('utf8', 'replace') + "\n.\n")
                return '250 OK'
        def authenticate(server, session, envelope, mechanism, auth_data):
            ok = isinstance(auth_data, LoginPassword) and auth_data.login == b'backupd' and auth_data.password == b'mail-pass'
            return AuthResult(success=ok, auth_data=auth_data)
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ctx.load_cert_chain(cert, key)
        c = Controller(Handler(), hostname='127.0.0.1', port=port, tls_context=ctx, require_starttls=True,
                       authenticator=authenticate, auth_required=True, auth_require_tls=True)
        c.start()
        print('ready', flush=True)
        sys.stdin.read()
        c.stop()
        """;

    public static async Task<SmtpServer> StartAsync()
    {
        var probe = await Tools.TryRunAsync(Python, "-c", "import aiosmtpd");
        if (probe.ExitCode != 0) throw new InvalidOperationException("aiosmtpd is missing: apt-get install -y python3-aiosmtpd (scripts/setup-env installs it)");
        var server = new SmtpServer();
        var key = Path.Combine(server.Directory, "key.pem");
        await Tools.RunAsync("openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
            "-days", "2", "-keyout", key, "-out", server.CertificateFile);
        var info = new ProcessStartInfo(Python) { RedirectStandardInput = true, RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (var a in new[] { "-c", Script, server.Port.ToString(System.Globalization.CultureInfo.InvariantCulture), server.CertificateFile, key, server.MailFile })
            info.ArgumentList.Add(a);
        server._process = Process.Start(info)!;
        var ready = await server._process.StandardOutput.ReadLineAsync().WaitAsync(TimeSpan.FromSeconds(30));
        if (ready != "ready") throw new InvalidOperationException($"aiosmtpd did not start: {await server._process.StandardError.ReadToEndAsync()}");
        return server;
    }

    public string Mail() => File.Exists(MailFile) ? File.ReadAllText(MailFile) : "";

    public async ValueTask DisposeAsync()
    {
        if (_process is { } p)
        {
            p.StandardInput.Close();
            if (!p.WaitForExit(10_000)) p.Kill();
            await p.WaitForExitAsync();
            p.Dispose();
        }
        System.IO.Directory.Delete(Directory, recursive: true);
    }
}
