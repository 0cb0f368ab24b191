namespace Backupd.Storage.Tests.Delta;

/// <summary>Builds image-like test content: random blocks, zero runs, and edits of them.</summary>
internal static class TestFiles
{
    public static readonly byte[] Key = Enumerable.Range(1, 32).Select(i => (byte)i).ToArray();

    public static byte[] ImageLike(Random rng, int length, int blockSize)
    {
        var data = new byte[length];
        for (var o = 0; o < length; o += blockSize)
        {
            if (rng.Next(10) < 6)
            {
                rng.NextBytes(data.AsSpan(o, Math.Min(blockSize, length - o)));
            }
        }
        return data;
    }

    /// <summary>Log-like text with zero blocks between (compresses well, unlike <see cref="ImageLike"/>).</summary>
    public static byte[] Compressible(Random rng, int length, int blockSize)
    {
        var data = new byte[length];
        var words = new[] { "kernel: ", "eth0 link up ", "GET /index.html 200 ", "backupd[4711]: ", "session opened for user root ", "\n" };
        for (var o = 0; o < length; o += blockSize)
        {
            if (rng.Next(10) < 2)
            {
                continue;
            }
            for (var i = o; i < Math.Min(o + blockSize, length);)
            {
                var w = System.Text.Encoding.ASCII.GetBytes(words[rng.Next(words.Length)] + rng.Next(1000));
                var n = Math.Min(w.Length, Math.Min(o + blockSize, length) - i);
                w.AsSpan(0, n).CopyTo(data.AsSpan(i));
                i += n;
            }
        }
        return data;
    }

    public enum Edit { InPlace, Insert, Delete, Truncate, Grow, AllZero, Empty, OneByte, Relocate, ZeroRange, Unchanged }

    public static byte[] Apply(Random rng, byte[] old, Edit edit, int blockSize)
    {
        var len = old.Length;
        int At(int max) => max <= 0 ? 0 : rng.Next(max + 1);
        switch (edit)
        {
            case Edit.InPlace:
                {
                    var copy = (byte[])old.Clone();
                    for (var k = rng.Next(1, 5); k > 0 && len > 0; k--)
                    {
                        var o = At(len - 1);
                        var n = Math.Min(len - o, rng.Next(1, 3 * blockSize));
                        rng.NextBytes(copy.AsSpan(o, n));
                    }
                    return copy;
                }
            case Edit.Insert:
                {
                    var o = At(len);
                    var ins = new byte[rng.Next(1, 2 * blockSize)];
                    rng.NextBytes(ins);
                    return [.. old.AsSpan(0, o), .. ins, .. old.AsSpan(o)];
                }
            case Edit.Delete:
                {
                    var o = At(len);
                    var n = Math.Min(len - o, rng.Next(0, 2 * blockSize));
                    return [.. old.AsSpan(0, o), .. old.AsSpan(o + n)];
                }
            case Edit.Truncate:
                return old.AsSpan(0, At(len)).ToArray();
            case Edit.Grow:
                {
                    var extra = new byte[rng.Next(1, 3 * blockSize)];
                    if (rng.Next(2) == 0)
                    {
                        rng.NextBytes(extra);
                    }
                    return [.. old, .. extra];
                }
            case Edit.AllZero:
                return new byte[len];
            case Edit.Empty:
                return [];
            case Edit.OneByte:
                return [(byte)rng.Next(256)];
            case Edit.Relocate:
                {
                    var copy = (byte[])old.Clone();
                    var blocks = len / blockSize;
                    for (var k = rng.Next(1, 4); k > 0 && blocks >= 2; k--)
                    {
                        var from = rng.Next(blocks) * blockSize;
                        var to = rng.Next(blocks) * blockSize;
                        old.AsSpan(from, blockSize).CopyTo(copy.AsSpan(to));
                    }
                    return copy;
                }
            case Edit.ZeroRange:
                {
                    var copy = (byte[])old.Clone();
                    var o = At(len);
                    copy.AsSpan(o, Math.Min(len - o, rng.Next(1, 4 * blockSize))).Clear();
                    return copy;
                }
            default:
                return (byte[])old.Clone();
        }
    }
}
