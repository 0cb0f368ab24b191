namespace Backupd.Storage.Offsite;

/// <summary>
/// Where each chunk of a <see cref="LocalChunkStore"/> is: in a pack (by its number in <see cref="Packs"/>, at an
/// offset) or in a file of its own (<see cref="Loose"/>, as written before packs). Memory only, rebuilt from the
/// packs' tables; callers lock it.
/// </summary>
internal sealed class ChunkLocations
{
    public const int Loose = -1;

    private readonly Dictionary<ChunkId, Location> _byId = [];
    private readonly List<string?> _packs = [];
    private readonly Dictionary<string, int> _packNumbers = new(StringComparer.Ordinal);

    /// <summary>Where a chunk is: <see cref="Pack"/> a number in <see cref="Packs"/> or <see cref="Loose"/>.</summary>
    public readonly record struct Location(int Pack, long Offset, int Length);

    /// <summary>The pack files known, by number (a removed one stays as null, so numbers never move).</summary>
    public IReadOnlyList<string?> Packs => _packs;

    public bool Knows(string pack) => _packNumbers.ContainsKey(pack);

    public bool TryGet(ChunkId id, out Location location) => _byId.TryGetValue(id, out location);

    public bool Contains(ChunkId id) => _byId.ContainsKey(id);

    /// <summary>Adds a pack's chunks; a chunk already known keeps its first place (a duplicate is harmless, a compaction drops it).</summary>
    public void AddPack(string pack, IReadOnlyList<ChunkPack.Entry> entries)
    {
        var number = _packs.Count;
        _packs.Add(pack);
        _packNumbers[pack] = number;
        foreach (var e in entries)
        {
            _byId.TryAdd(e.Id, new Location(number, e.Offset, e.Length));
        }
    }

    public void AddLoose(ChunkId id) => _byId.TryAdd(id, new Location(Loose, 0, 0));

    public void Remove(ChunkId id) => _byId.Remove(id);

    /// <summary>Forgets a pack file (removed or replaced); chunks still placed in it must be moved or removed first.</summary>
    public void ForgetPack(int number)
    {
        _packNumbers.Remove(_packs[number]!);
        _packs[number] = null;
    }

    /// <summary>Every chunk with its place.</summary>
    public IEnumerable<KeyValuePair<ChunkId, Location>> All => _byId;

    public void Clear()
    {
        _byId.Clear();
        _packs.Clear();
        _packNumbers.Clear();
    }
}
