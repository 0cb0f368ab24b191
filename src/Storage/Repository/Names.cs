namespace Backupd.Storage.Repository;

/// <summary>What a name in the repository stands for; each kind has its own grammar (docs/repository-format.md).</summary>
public enum NameKind
{
    /// <summary>A group (a VM's UUID, or "files"): a directory name.</summary>
    GroupId,

    /// <summary>A file of a group ("vda.0"): a directory name.</summary>
    FileKey,

    /// <summary>A restore point id, also a version id: <c>yyyyMMddTHHmmssZ-xxxxxxxx</c>; names files.</summary>
    PointId,

    /// <summary>The name of a document attached to a point ("domain.xml"): never a path, same grammar as keys.</summary>
    MetadataName,
}

/// <summary>
/// Names read from a repository or given by a caller become directory and file names: only names of their strict
/// grammar are accepted, so no name is ever a path (no separators, no ".", "..", hidden or control characters).
/// </summary>
public static class Names
{
    public const int MaxLength = 128;

    /// <summary>Throws <see cref="ArgumentException"/> unless <paramref name="name"/> is 1-128 of [A-Za-z0-9._-], not starting with '.', not "." or "..".</summary>
    public static void Validate(string name, string what) => Validate(NameKind.FileKey, name, what);

    /// <summary>Throws <see cref="ArgumentException"/> unless <paramref name="name"/> is a valid <paramref name="kind"/>.</summary>
    public static void Validate(NameKind kind, string name, string what)
    {
        ArgumentNullException.ThrowIfNull(name);
        if (Problem(kind, name) is { } problem)
        {
            throw new ArgumentException($"{what} {problem}", what);
        }
    }

    /// <summary>
    /// For names read from a repository document: throws <see cref="RepositoryCorruptException"/> naming the file and
    /// the field unless <paramref name="name"/> is a valid <paramref name="kind"/>.
    /// </summary>
    public static void Require(NameKind kind, string? name, string file, string field)
    {
        var problem = name is null ? "is missing" : Problem(kind, name);
        if (problem is not null)
        {
            throw new RepositoryCorruptException($"{file}: field '{field}' {problem}; the document is refused (nothing was changed)");
        }
    }

    /// <summary>For a directory entry of the repository: throws <see cref="RepositoryCorruptException"/> naming the directory unless <paramref name="name"/> is a valid <paramref name="kind"/>.</summary>
    public static void RequireEntry(NameKind kind, string name, string directory)
    {
        if (Problem(kind, name) is { } problem)
        {
            throw new RepositoryCorruptException($"{directory}: entry {problem}; a {kind} is expected there, so it is refused (nothing was changed)");
        }
    }

    /// <summary>Whether <paramref name="name"/> is a valid <paramref name="kind"/>.</summary>
    public static bool IsValid(NameKind kind, string? name) => name is not null && Problem(kind, name) is null;

    /// <summary>Why <paramref name="name"/> is not a valid <paramref name="kind"/>, or null.</summary>
    private static string? Problem(NameKind kind, string name)
    {
        if (kind == NameKind.PointId)
        {
            return IsPointId(name) ? null : $"'{Printable(name)}' is not a restore point id (yyyyMMddTHHmmssZ-xxxxxxxx, 8 lower-case hex digits)";
        }
        if (name.Length is 0 or > MaxLength)
        {
            return $"must be 1 to {MaxLength} characters, got {name.Length}";
        }
        if (name[0] == '.')
        {
            return $"'{Printable(name)}' must not start with '.' (no '.', '..' or hidden names)";
        }
        foreach (var c in name)
        {
            if (!(char.IsAsciiLetterOrDigit(c) || c is '.' or '_' or '-'))
            {
                return $"'{Printable(name)}' contains '{Printable(c.ToString())}'; allowed are letters, digits, '.', '_' and '-' (no path separators or control characters)";
            }
        }
        return null;
    }

    private static bool IsPointId(string s)
    {
        const string pattern = "ddddddddTddddddZ-hhhhhhhh"; // d digit, h lower-case hex: as BackupRepository.NewPointId makes them
        if (s.Length != pattern.Length)
        {
            return false;
        }
        for (var i = 0; i < s.Length; i++)
        {
            var ok = pattern[i] switch
            {
                'd' => char.IsAsciiDigit(s[i]),
                'h' => char.IsAsciiHexDigitLower(s[i]),
                var literal => s[i] == literal,
            };
            if (!ok)
            {
                return false;
            }
        }
        return true;
    }

    private static string Printable(string s) =>
        string.Concat(s.Take(MaxLength + 8).Select(c => char.IsControl(c) ? $"\\x{(int)c:x2}" : c.ToString())) + (s.Length > MaxLength + 8 ? "…" : "");
}
