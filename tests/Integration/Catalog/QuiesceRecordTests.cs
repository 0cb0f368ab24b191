using Backupd.Integration.Fixtures;
using Backupd.Storage.Catalog;
using Dapper;

namespace Backupd.Integration.Catalog;

#pragma warning disable CA1001 // the store is disposed in IAsyncLifetime.DisposeAsync, which xunit calls
/// <summary>Issue 11: a run's quiesce report lands in runs.detail and, when it did not go to plan, in a quiesce event (migration 0004).</summary>
[Trait("Category", "Integration")]
public sealed class QuiesceRecordTests(PostgresDatabase database) : IClassFixture<PostgresDatabase>, IAsyncLifetime
{
    private CatalogStore store = null!;
#pragma warning restore CA1001

    public async Task InitializeAsync()
    {
        await CatalogMigrator.MigrateAsync(database.ConnectionString, CancellationToken.None);
        store = new CatalogStore(database.ConnectionString);
    }

    public async Task DisposeAsync() => await store.DisposeAsync();

    [Fact]
    public async Task A_fallback_is_stored_in_the_run_detail_and_as_an_event_a_plain_quiesce_only_in_the_detail()
    {
        var uuid = Guid.NewGuid();
        var fellBack = await store.StartRunAsync(new RunStart(uuid, "vm-q", "cli", "root"), ProcessIdentity.Current, CancellationToken.None);
        var quiesced = await store.StartRunAsync(new RunStart(uuid, "vm-q", "cli", "root"), ProcessIdentity.Current, CancellationToken.None);

        await store.RecordQuiesceAsync(fellBack, uuid, """{"requested":"preferred","outcome":"crash-consistent","reason":"no ping","thaw":"thawed"}""", noteworthy: true, ok: true, ProcessIdentity.Current, CancellationToken.None);
        await store.RecordQuiesceAsync(quiesced, uuid, """{"requested":"required","outcome":"quiesced"}""", noteworthy: false, ok: true, ProcessIdentity.Current, CancellationToken.None);
        await store.RecordQuiesceAsync(null, uuid, """{"requested":"required","outcome":"refused"}""", noteworthy: true, ok: false, ProcessIdentity.Current, CancellationToken.None);

        await using var connection = await store.OpenAsync(CancellationToken.None);
        Assert.Equal("thawed", await connection.ExecuteScalarAsync<string>("select detail->'quiesce'->>'thaw' from runs where id = @fellBack", new { fellBack }));
        Assert.Equal("quiesced", await connection.ExecuteScalarAsync<string>("select detail->'quiesce'->>'outcome' from runs where id = @quiesced", new { quiesced }));
        var events = (await store.ListEventsAsync(EventKinds.Quiesce, null, 1000, CancellationToken.None)).Where(e => e.Detail.Contains("crash-consistent", StringComparison.Ordinal) && e.Detail.Contains($"run {fellBack}:", StringComparison.Ordinal) || e.Detail.Contains("refused", StringComparison.Ordinal)).ToList();
        Assert.Contains(events, e => e.Ok && e.Detail.StartsWith($"run {fellBack}:", StringComparison.Ordinal));
        Assert.Contains(events, e => !e.Ok && e.Detail.Contains("refused", StringComparison.Ordinal));
        Assert.DoesNotContain(await store.ListEventsAsync(EventKinds.Quiesce, null, 1000, CancellationToken.None), e => e.Detail.StartsWith($"run {quiesced}:", StringComparison.Ordinal));
    }
}
