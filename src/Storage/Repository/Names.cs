namespace Backupd.Storage.Repository;

/// <summary>File keys and group ids become directory names: only safe, portable names are accepted.</summary>
public static class Names
{
    public const int MaxLength = 128;

    /// <summary>Throws <see cref="ArgumentException"/> unless <paramref name="name"/> is 1-128 of [A-Za-z0-9._-], not starting with '.', not "." or "..".</summary>
    public static void Validate(string name, string what)
    {
        ArgumentNullException.ThrowIfNull(name);
        if (name.Length is 0 or > MaxLength)
        {
            throw new ArgumentException($"{what} must be 1 to {MaxLength} characters, got {name.Length}", what);
        }
        if (name[0] == '.')
        {
            throw new ArgumentException($"{what} '{Printable(name)}' must not start with '.' (no '.', '..' or hidden names)", what);
        }
        foreach (var c in name)
        {
            if (!(char.IsAsciiLetterOrDigit(c) || c is '.' or '_' or '-'))
            {
                throw new ArgumentException($"{what} '{Printable(name)}' contains '{Printable(c.ToString())}'; allowed are letters, digits, '.', '_' and '-' (no path separators or control characters)", what);
            }
        }
    }

    private static string Printable(string s) => string.Concat(s.Select(c => char.IsControl(c) ? $"\\x{(int)c:x2}" : c.ToString()));
}
