using Backupd.Storage.Catalog;
using Microsoft.Extensions.Logging;

namespace Backupd.Daemon.Observability;

/// <summary>
/// The catalog's per-domain health, read at most every <see cref="MaxAge"/> (scrapes and page loads share it) and
/// with a short timeout, so a slow or dead catalog makes a scrape report backupd_catalog_up 0 instead of hanging.
/// </summary>
public sealed class HealthSnapshot(CatalogStore catalog, ILogger<HealthSnapshot> log, TimeProvider clock) : IDisposable
{
    public static readonly TimeSpan MaxAge = TimeSpan.FromSeconds(2);
    public static readonly TimeSpan Timeout = TimeSpan.FromSeconds(5);

    private readonly SemaphoreSlim _gate = new(1, 1);
    private DateTimeOffset _readAt = DateTimeOffset.MinValue;

    public IReadOnlyList<DomainHealthRow> Domains { get; internal set; } = [];
    public bool CatalogUp { get; private set; }

    public CatalogStore Catalog => catalog;

    public void Dispose() => _gate.Dispose();

    public async Task RefreshAsync(CancellationToken ct)
    {
        await _gate.WaitAsync(ct);
        try
        {
            if (clock.GetUtcNow() - _readAt < MaxAge) return;
            using var timeout = CancellationTokenSource.CreateLinkedTokenSource(ct);
            timeout.CancelAfter(Timeout);
            try
            {
                Domains = await catalog.ListDomainHealthAsync(timeout.Token);
                CatalogUp = true;
            }
            catch (Exception e) when (e is Npgsql.NpgsqlException or OperationCanceledException or TimeoutException && !ct.IsCancellationRequested)
            {
                CatalogUp = false;
                log.CatalogScrapeFailed(e);
            }
            _readAt = clock.GetUtcNow();
        }
        finally { _gate.Release(); }
    }
}
