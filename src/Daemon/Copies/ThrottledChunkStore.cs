using Backupd.Daemon.Workflow;
using Backupd.Storage.Offsite;

namespace Backupd.Daemon.Copies;

/// <summary>
/// A copy's bandwidth limit: wraps the target's <see cref="IChunkStore"/> and holds each batch of sealed chunks (and
/// each index write) until the limiter lets its bytes pass, so the wire — not the local disk read, most of which
/// dedup never sends — carries at most the rate. Wrapping the store leaves the copy engine as it is.
/// </summary>
internal sealed class ThrottledChunkStore(IChunkStore inner, BandwidthLimiter limiter, CancellationToken ct) : IChunkStore
{
    public string Location => inner.Location;
    public bool AppendOnly => inner.AppendOnly;
    public byte[]? ReadConfig() => inner.ReadConfig();
    public void CreateConfig(byte[] config) => inner.CreateConfig(config);
    public IReadOnlyList<ChunkId> Missing(IReadOnlyList<ChunkId> ids) => inner.Missing(ids);

    public void PutChunks(IReadOnlyList<(ChunkId Id, ReadOnlyMemory<byte> Frame)> chunks)
    {
        Wait(chunks.Sum(c => (long)c.Frame.Length));
        inner.PutChunks(chunks);
    }

    public Action BeginPutChunks(IReadOnlyList<(ChunkId Id, ReadOnlyMemory<byte> Frame)> chunks)
    {
        Wait(chunks.Sum(c => (long)c.Frame.Length));
        return inner.BeginPutChunks(chunks);
    }

    public IReadOnlyList<byte[]> GetChunks(IReadOnlyList<ChunkId> ids) => inner.GetChunks(ids);
    public IIndexUpload BeginIndex(string name) => new Upload(inner.BeginIndex(name), this);
    public IReadOnlyList<(string Name, long Length)> ListIndexes() => inner.ListIndexes();
    public Stream OpenIndex(string name) => inner.OpenIndex(name);
    public void DeleteIndex(string name) => inner.DeleteIndex(name);
    public void Dispose() => inner.Dispose();

    // The engine calls the store synchronously from its own worker thread: waiting there is what slows it.
    private void Wait(long bytes) => limiter.WaitAsync(bytes, ct).AsTask().GetAwaiter().GetResult();

    private sealed class Upload(IIndexUpload inner, ThrottledChunkStore owner) : IIndexUpload
    {
        public void Write(ReadOnlySpan<byte> data)
        {
            owner.Wait(data.Length);
            inner.Write(data);
        }

        public void Commit() => inner.Commit();
        public void Dispose() => inner.Dispose();
    }
}
