using System.Text.Json;
using Backupd.Daemon.Observability;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

namespace Backupd.Daemon.Web;

/// <summary>
/// The daemon's read-only HTTP listener (Kestrel, minimal API): /metrics, the status pages and /api. It is its own
/// small WebApplication started and stopped with the daemon's host, so the daemon's generic host stays as it is.
/// Every route is GET (handlers take a CancellationToken, not HttpContext: a lone HttpContext lambda binds as a RequestDelegate and drops its result); with a credential configured every request must present it (401 otherwise).
/// </summary>
public sealed class WebListener(HttpSettings settings, StatusReader status, PrometheusExporter exporter, HealthSnapshot health,
    ILoggerFactory loggers) : IHostedService, IAsyncDisposable
{
    private WebApplication? _app;
    private static readonly JsonSerializerOptions Json = Cli.JsonOutput.Options;

    /// <summary>The bound address (port 0 in tests becomes the real port).</summary>
    public Uri? Address { get; private set; }

    public async Task StartAsync(CancellationToken cancellationToken)
    {
        var builder = WebApplication.CreateSlimBuilder(new WebApplicationOptions { ApplicationName = "backupd", ContentRootPath = AppContext.BaseDirectory });
        builder.Logging.ClearProviders();
        builder.WebHost.ConfigureKestrel(k =>
        {
            k.Listen(settings.Listen);
            k.AddServerHeader = false;
        });
        var app = builder.Build();
        var log = loggers.CreateLogger<WebListener>();
        if (settings.Credential is { } credential)
        {
            app.Use(async (context, next) =>
            {
                if (credential.Accepts(context.Request.Headers.Authorization)) { await next(context); return; }
                context.Response.StatusCode = StatusCodes.Status401Unauthorized;
                if (credential.User is not null) context.Response.Headers.WWWAuthenticate = "Basic realm=\"backupd\", charset=\"UTF-8\"";
                else context.Response.Headers.WWWAuthenticate = "Bearer realm=\"backupd\"";
            });
        }
        app.Use(async (context, next) =>
        {
            try { await next(context); }
            catch (Exception e) when (e is not OperationCanceledException)
            {
                log.RequestFailed(context.Request.Path, e);
                if (!context.Response.HasStarted) context.Response.StatusCode = StatusCodes.Status500InternalServerError;
            }
        });
        app.MapGet("/metrics", async (CancellationToken requestAborted) =>
        {
            await health.RefreshAsync(requestAborted);
            return Results.Text(exporter.Scrape(), PrometheusExporter.ContentType);
        });
        app.MapGet("/api/status", async (CancellationToken requestAborted) => JsonResult(await status.StatusAsync(requestAborted)));
        app.MapGet("/api/domains/{name}", async (string name, CancellationToken requestAborted) =>
            await status.DomainAsync(name, requestAborted) is { } detail
                ? JsonResult(detail)
                : JsonResult(new { error = $"no domain '{name}' in the catalog", kind = "not-found" }, 404));
        app.MapGet("/", () => Results.Content(Pages.Overview, "text/html; charset=utf-8"));
        app.MapGet("/domains/{name}", (string name) => Results.Content(Pages.Domain(name), "text/html; charset=utf-8"));
        app.MapGet("/healthz", () => Results.Text("ok\n"));
        await app.StartAsync(cancellationToken);
        _app = app;
        var bound = app.Urls.FirstOrDefault() ?? $"http://{settings.Listen}";
        Address = new Uri(bound.EndsWith('/') ? bound : bound + "/");
        log.Listening(Address.Authority, settings.Credential is null ? "no credential: loopback only" : settings.Credential.User is null ? "bearer token required" : "basic auth required");
    }

    /// <summary>The CLI's JSON options (same field names as `--json`), serialized here so a failure is logged, not an empty 200.</summary>
    private static IResult JsonResult<T>(T value, int status = 200) =>
        Results.Text(JsonSerializer.Serialize(value, Json), "application/json; charset=utf-8", System.Text.Encoding.UTF8, status);

    public async Task StopAsync(CancellationToken cancellationToken)
    {
        if (_app is not null) await _app.StopAsync(cancellationToken);
    }

    public async ValueTask DisposeAsync()
    {
        if (_app is not null) await _app.DisposeAsync();
    }
}
