using System.Collections.Concurrent;
using System.Net;
using System.Net.Sockets;

namespace Backupd.Integration.Fixtures;

/// <summary>A local HTTP endpoint (HttpListener on a free loopback port) that records every POST and answers with a scripted status.</summary>
public sealed class WebhookReceiver : IDisposable
{
    public sealed record Received(string Body, IReadOnlyDictionary<string, string?> Headers, DateTime At);

    private readonly HttpListener _listener = new();
    private readonly Task _loop;
    private readonly Queue<int> _statuses;

    public string Url { get; }
    public ConcurrentQueue<Received> Requests { get; } = new();

    /// <param name="statuses">Status codes for the first requests in order (then 200).</param>
    public WebhookReceiver(params int[] statuses)
    {
        _statuses = new Queue<int>(statuses);
        Url = $"http://127.0.0.1:{FreePort()}/hook/";
        _listener.Prefixes.Add(Url);
        _listener.Start();
        _loop = Task.Run(LoopAsync);
    }

    public static int FreePort()
    {
        using var probe = new TcpListener(IPAddress.Loopback, 0);
        probe.Start();
        return ((IPEndPoint)probe.LocalEndpoint).Port;
    }

    private async Task LoopAsync()
    {
        while (_listener.IsListening)
        {
            HttpListenerContext context;
            try { context = await _listener.GetContextAsync(); }
            catch (Exception e) when (e is HttpListenerException or ObjectDisposedException) { return; }
            using var reader = new StreamReader(context.Request.InputStream);
            var body = await reader.ReadToEndAsync();
            var headers = context.Request.Headers.AllKeys.Where(k => k is not null).ToDictionary(k => k!, k => context.Request.Headers[k], StringComparer.OrdinalIgnoreCase);
            Requests.Enqueue(new Received(body, headers, DateTime.UtcNow));
            lock (_statuses) context.Response.StatusCode = _statuses.Count > 0 ? _statuses.Dequeue() : 200;
            context.Response.Close();
        }
    }

    public void Dispose()
    {
        // Close only: after Stop, the managed HttpListener's Close re-resolves its endpoint and
        // binds the port again to remove the prefix, which fails with "Address already in use"
        // once another test has taken that port.
        _listener.Close();
        _loop.Wait(TimeSpan.FromSeconds(5));
    }
}
