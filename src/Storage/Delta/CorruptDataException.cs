namespace Backupd.Storage.Delta;

/// <summary>
/// A signature, delta or undo record is damaged, truncated or not what the caller expected.
/// The message says what was read, where (byte offset) and what was expected. Thrown before any
/// result that depends on the bad bytes is produced.
/// </summary>
public sealed class CorruptDataException : IOException
{
    public CorruptDataException(string what, long offset, string detail)
        : base($"{what}: {detail} (at byte {offset})")
    {
        What = what;
        Offset = offset;
    }

    public CorruptDataException() { What = ""; }
    public CorruptDataException(string message) : base(message) { What = ""; }
    public CorruptDataException(string message, Exception inner) : base(message, inner) { What = ""; }

    /// <summary>Which structure was bad ("signature", "delta", "undo record").</summary>
    public string What { get; }

    /// <summary>Byte offset in the structure where the problem was found (-1 when unknown).</summary>
    public long Offset { get; } = -1;
}
