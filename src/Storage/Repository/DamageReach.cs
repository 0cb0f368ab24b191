using Backupd.Storage.Delta;

namespace Backupd.Storage.Repository;

/// <summary>
/// Which restore points read a given mirror block. Version i of a file is the mirror overlaid by the undo records of
/// versions n-1 … i, so at block b it comes from the mirror unless one of those records covers b: if k is the newest
/// version whose record covers b, versions k+1 … n (the mirror's own) read b from the mirror and older ones do not.
/// Used only when the scrub found damage, so reading the undo records (entry headers, data skipped) is affordable.
/// </summary>
internal static class DamageReach
{
    /// <summary>Point ids, oldest first, whose version of the file read at least one of <paramref name="blocks"/> from the mirror.</summary>
    public static IReadOnlyList<string> PointsReadingMirror(
        RepositoryDirectory beneath, RepositoryLayout layout, string groupId, string fileKey, IReadOnlyList<PointDocument> points, IReadOnlyList<PointFileDocument> chain,
        IReadOnlyCollection<long> blocks, int blockSize)
    {
        if (blocks.Count == 0 || chain.Count == 0)
        {
            return [];
        }
        // For each block the oldest chain index that still reads it from the mirror (n-1: only the mirror's version).
        var pending = blocks.Distinct().Order().ToList();
        var oldestReading = pending.ToDictionary(b => b, _ => 0);
        for (var k = chain.Count - 2; k >= 0 && pending.Count > 0; k--)
        {
            var covered = Coverage(beneath, layout.Undo(groupId, fileKey, chain[k].VersionId));
            var still = new List<long>();
            foreach (var b in pending)
            {
                if (covered is not null && Covers(covered, b * blockSize, (b + 1) * blockSize))
                {
                    oldestReading[b] = k + 1;
                }
                else
                {
                    still.Add(b);
                }
            }
            pending = still;
        }
        var oldest = oldestReading.Values.Min();
        var versions = chain.Skip(oldest).Select(v => v.VersionId).ToHashSet(StringComparer.Ordinal);
        return points.Where(p => p.Files.Any(f => f.FileKey == fileKey && versions.Contains(f.VersionId)))
            .OrderBy(p => p.Sequence).Select(p => p.PointId).ToList();
    }

    /// <summary>The byte ranges a record restores, merged and clipped to its target length; null if it cannot be read (then it covers nothing).</summary>
    private static List<(long Start, long End)>? Coverage(RepositoryDirectory beneath, string undoPath)
    {
        try
        {
            using var stream = beneath.OpenRead(undoPath, 1 << 16);
            using var reader = new UndoRecordReader(stream);
            var ranges = new List<(long Start, long End)>();
            void Add(long start, long end)
            {
                if (ranges.Count > 0 && ranges[^1].End == start)
                {
                    ranges[^1] = (ranges[^1].Start, end);
                }
                else
                {
                    ranges.Add((start, end));
                }
            }
            while (reader.TryRead(out var e))
            {
                Add(e.Offset, e.End);
            }
            // Past the older version's end there is nothing to read: a shorter version does not read those bytes at all.
            Add(reader.TargetLength, long.MaxValue);
            return ranges;
        }
        catch (Exception e) when (e is IOException or CorruptDataException or RepositoryCorruptException)
        {
            return null;
        }
    }

    private static bool Covers(List<(long Start, long End)> ranges, long from, long to)
    {
        // The last range starting at or before 'from' must reach 'to' (ranges are sorted and merged when adjacent).
        int lo = 0, hi = ranges.Count - 1, found = -1;
        while (lo <= hi)
        {
            var mid = (lo + hi) / 2;
            if (ranges[mid].Start <= from)
            {
                found = mid;
                lo = mid + 1;
            }
            else
            {
                hi = mid - 1;
            }
        }
        return found >= 0 && ranges[found].End >= to;
    }
}
