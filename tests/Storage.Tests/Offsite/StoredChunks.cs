using Backupd.Storage.Offsite;

namespace Backupd.Storage.Tests.Offsite;

/// <summary>
/// What a copy repository's directory holds, seen the way an attacker or a failing disk would touch it: the chunks in
/// its packs (and loose chunk files), and surgery on them. Shared with the Integration tests (linked source).
/// </summary>
public static class StoredChunks
{
    private static string Packs(string root) => Path.Combine(root, "packs");

    /// <summary>Every stored chunk: (pack, entry) for chunks in packs.</summary>
    public static List<(string Pack, ChunkPack.Entry Entry)> All(string root) =>
        (Directory.Exists(Packs(root)) ? Directory.EnumerateFiles(Packs(root), "*" + ChunkPack.Suffix).Where(p => !Path.GetFileName(p).StartsWith('.')) : [])
            .SelectMany(p => Table(p).Select(e => (p, e))).OrderBy(c => c.e.Id.ToHex(), StringComparer.Ordinal).ToList();

    /// <summary>The table of the pack at <paramref name="path"/>, read as the store reads it.</summary>
    public static IReadOnlyList<ChunkPack.Entry> Table(string path)
    {
        using var handle = File.OpenHandle(path);
        return ChunkPack.ReadTable(handle, path);
    }

    public static int Count(string root) => All(root).Count;

    /// <summary>The bytes the chunks take on disk (the pack files, tables included).</summary>
    public static long Bytes(string root) => Directory.Exists(Packs(root))
        ? Directory.EnumerateFiles(Packs(root), "*" + ChunkPack.Suffix).Where(f => !Path.GetFileName(f).StartsWith('.')).Sum(f => new FileInfo(f).Length)
        : 0;

    /// <summary>Flips one bit <paramref name="fromEnd"/> bytes before the end of a chunk's frame (its sealed body: authentication fails); returns the chunk.</summary>
    public static ChunkId FlipByte(string root, int which = 0, int fromEnd = 3)
    {
        var (pack, entry) = All(root)[which];
        using (var file = new FileStream(pack, FileMode.Open, FileAccess.ReadWrite))
        {
            file.Position = entry.Offset + entry.Length - fromEnd;
            var b = file.ReadByte();
            file.Position--;
            file.WriteByte((byte)(b ^ 0x01));
        }
        return entry.Id;
    }

    /// <summary>Rewrites the pack holding <paramref name="id"/> without it (a chunk lost behind the store's back).</summary>
    public static void Drop(string root, ChunkId id) => Rewrite(root, id, frames => frames.RemoveAll(f => f.Id == id));

    /// <summary>Stores <paramref name="donor"/>'s frame under <paramref name="victim"/>'s id (a valid frame of another chunk); both must share a pack.</summary>
    public static void Swap(string root, ChunkId victim, ChunkId donor) => Rewrite(root, victim, frames =>
    {
        var frame = frames.Single(f => f.Id == donor).Frame;
        var at = frames.FindIndex(f => f.Id == victim);
        frames[at] = (victim, frame);
    });

    private static void Rewrite(string root, ChunkId id, Action<List<(ChunkId Id, ReadOnlyMemory<byte> Frame)>> change)
    {
        var pack = All(root).First(c => c.Entry.Id == id).Pack;
        var bytes = File.ReadAllBytes(pack);
        var frames = Table(pack).Select(e => (e.Id, (ReadOnlyMemory<byte>)bytes.AsMemory((int)e.Offset, e.Length))).ToList();
        change(frames);
        var (parts, _) = ChunkPack.Build(frames);
        File.WriteAllBytes(pack, parts.SelectMany(p => p.ToArray()).ToArray());
    }
}
