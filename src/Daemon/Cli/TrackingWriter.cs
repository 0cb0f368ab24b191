using System.Text;

namespace Backupd.Daemon.Cli;

/// <summary>
/// Console.Out/Error as the command sees them, remembering whether anything was written and the last
/// complete line: what <see cref="CommandTree"/> needs to keep --json's "one object, errors included".
/// Writes go straight through (Console.SetOut adds the lock).
/// </summary>
internal sealed class TrackingWriter(TextWriter inner) : TextWriter
{
    private readonly StringBuilder _line = new();

    public override Encoding Encoding => inner.Encoding;

    /// <summary>Whether the command wrote anything at all.</summary>
    public bool Written { get; private set; }

    /// <summary>The last non-blank line written (a partial line counts once it ends).</summary>
    public string? LastLine { get; private set; }

    public override void Write(char value)
    {
        inner.Write(value);
        Track([value]);
    }

    public override void Write(string? value)
    {
        inner.Write(value);
        Track(value);
    }

    public override void Write(char[] buffer, int index, int count)
    {
        inner.Write(buffer, index, count);
        Track(buffer.AsSpan(index, count));
    }

    public override void Flush() => inner.Flush();

    private void Track(ReadOnlySpan<char> text)
    {
        if (text.IsEmpty) return;
        Written = true;
        foreach (var c in text)
        {
            if (c == '\n')
            {
                if (_line.ToString().Trim() is { Length: > 0 } line) LastLine = line;
                _line.Clear();
            }
            else if (_line.Length < 4096)
            {
                _line.Append(c);
            }
        }
    }
}
