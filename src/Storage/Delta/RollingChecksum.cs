namespace Backupd.Storage.Delta;

/// <summary>
/// rsync's weak rolling checksum (two 16-bit sums) over a fixed window. Only used by the optional
/// byte-by-byte search through unmatched data; a hit is always confirmed with the strong hash.
/// </summary>
public struct RollingChecksum
{
    private uint _a;
    private uint _b;
    private int _length;

    public static uint Of(ReadOnlySpan<byte> window)
    {
        var r = default(RollingChecksum);
        r.Reset(window);
        return r.Value;
    }

    public readonly uint Value => (_a & 0xffff) | (_b << 16);

    public void Reset(ReadOnlySpan<byte> window)
    {
        uint a = 0, b = 0;
        var n = window.Length;
        for (var i = 0; i < n; i++)
        {
            a += window[i];
            b += (uint)(n - i) * window[i];
        }
        _a = a;
        _b = b;
        _length = n;
    }

    /// <summary>Slides the window one byte: drops <paramref name="outgoing"/>, appends <paramref name="incoming"/>.</summary>
    public void Roll(byte outgoing, byte incoming)
    {
        _a = _a - outgoing + incoming;
        _b = _b - ((uint)_length * outgoing) + _a;
    }
}
