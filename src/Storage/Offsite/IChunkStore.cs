namespace Backupd.Storage.Offsite;

/// <summary>
/// Where a copy repository's files are: a local directory (<see cref="LocalChunkStore"/>), or a `backupd serve` at
/// the other end of an SSH connection (<see cref="RemoteChunkStore"/>). The store sees only sealed bytes and names;
/// everything that needs the key happens in <see cref="CopyRepository"/>, on the client.
/// </summary>
public interface IChunkStore : IDisposable
{
    /// <summary>Where it is, for messages ("/mnt/usb/copies", "ssh://backup@nas/srv/copies").</summary>
    string Location { get; }

    /// <summary>True when the store refuses deletes (`serve --append-only`).</summary>
    bool AppendOnly { get; }

    /// <summary>The repository document (offsite.json), or null when the store holds no repository yet.</summary>
    byte[]? ReadConfig();

    /// <summary>Creates the repository with <paramref name="config"/> as its document; refused when one exists.</summary>
    void CreateConfig(byte[] config);

    /// <summary>Of <paramref name="ids"/>, those not stored yet.</summary>
    IReadOnlyList<ChunkId> Missing(IReadOnlyList<ChunkId> ids);

    /// <summary>Stores sealed chunks durably; one already present is kept as it is.</summary>
    void PutChunks(IReadOnlyList<(ChunkId Id, ReadOnlyMemory<byte> Frame)> chunks);

    /// <summary>
    /// <see cref="PutChunks"/> in two halves: hands the chunks to the store and returns what waits until they are
    /// durable (it throws what <see cref="PutChunks"/> would). The frames are no longer read once this returns. A
    /// store at the end of a link sends the next batch while the store makes this one durable; a local store stores
    /// it here (the default).
    /// </summary>
    Action BeginPutChunks(IReadOnlyList<(ChunkId Id, ReadOnlyMemory<byte> Frame)> chunks)
    {
        PutChunks(chunks);
        return static () => { };
    }

    /// <summary>The sealed frames of <paramref name="ids"/>, in order; a missing one throws <see cref="Repository.RepositoryCorruptException"/>.</summary>
    IReadOnlyList<byte[]> GetChunks(IReadOnlyList<ChunkId> ids);

    /// <summary>Starts writing an index; it appears (durably, never replacing one) only at <see cref="IIndexUpload.Commit"/>.</summary>
    IIndexUpload BeginIndex(string name);

    /// <summary>The complete indexes, by name, with their sizes.</summary>
    IReadOnlyList<(string Name, long Length)> ListIndexes();

    /// <summary>Reads an index's sealed bytes.</summary>
    Stream OpenIndex(string name);

    /// <summary>Removes an index (refused by an append-only store).</summary>
    void DeleteIndex(string name);
}

/// <summary>An index being written: bytes in order, then <see cref="Commit"/>; disposed uncommitted, it never appears.</summary>
public interface IIndexUpload : IDisposable
{
    void Write(ReadOnlySpan<byte> data);

    void Commit();
}

/// <summary>The store refused an operation it is not allowed to do (append-only), or its file system is full.</summary>
public sealed class ChunkStoreRefusedException(string message) : Repository.RepositoryException(message);

/// <summary>
/// Garbage collection of a store (docs/repository-format.md, "Pruning a copy"), for the side that may delete:
/// <see cref="BeginCollection"/> takes the repository exclusively (no copy, restore or verify runs until the store is
/// disposed, so no copy can rely on a chunk it found present while it goes), then the unreferenced chunks are listed
/// and deleted. An append-only store refuses all of it.
/// </summary>
public interface IChunkCollector
{
    /// <summary>
    /// Takes the repository for collection (refused while a copy, restore or verify holds it) and removes what
    /// interrupted uploads left (temporary files: with the repository held, none is in progress); returns how many.
    /// </summary>
    int BeginCollection();

    /// <summary>The chunks whose id starts with the byte <paramref name="prefix"/>.</summary>
    IReadOnlyList<ChunkId> ListChunks(byte prefix);

    /// <summary>
    /// Deletes chunks (absent ones are no error); only after <see cref="BeginCollection"/>. A chunk in a file of its
    /// own goes at once (its bytes are returned); one inside a pack goes at <see cref="Compact"/>.
    /// </summary>
    long DeleteChunks(IReadOnlyList<ChunkId> ids);

    /// <summary>Rewrites the packs that hold deleted chunks without them, durably; returns the bytes freed.</summary>
    long Compact();
}
