using System.Text;
using System.Text.Unicode;
using Backupd.Policies.Model;
using Backupd.Policies.Yaml;

namespace Backupd.Policies.Loading;

/// <summary>
/// Loads policy files. A file holds either a top-level <c>policies:</c> list or a single policy
/// mapping (several YAML documents separated by <c>---</c> are allowed, each of either form).
/// Every problem is reported at once with file, line, column and the expected form; a file with
/// any problem contributes no policies. No I/O besides reading the files it is given.
/// </summary>
public static class PolicyLoader
{
    /// <summary>Policy files are small; anything larger is a mistake (a disk image, a log) and is refused unread.</summary>
    public const int MaxFileBytes = 1024 * 1024;

    /// <summary>Past this many errors in one file the rest are summarised in one line.</summary>
    public const int MaxErrorsPerFile = 200;

    /// <summary>Loads the *.yaml and *.yml files directly in <paramref name="directory"/> (sorted by name; hidden files skipped).</summary>
    public static PolicySetResult LoadDirectory(string directory)
    {
        if (!Directory.Exists(directory))
            return new PolicySetResult([new PolicyFileResult(directory, [], [new PolicyError(directory, 1, 1, "policies directory not found")])]);
        return LoadFiles(PolicyFilesIn(directory));
    }

    /// <summary>
    /// The policy files of a directory, in load order. Every entry with a policy name counts, directories
    /// and FIFOs included, so that <see cref="LoadFile"/> reports them instead of their being silently skipped.
    /// </summary>
    public static IReadOnlyList<string> PolicyFilesIn(string directory) =>
        Directory.EnumerateFileSystemEntries(Path.GetFullPath(directory))
            .Where(f => (f.EndsWith(".yaml", StringComparison.Ordinal) || f.EndsWith(".yml", StringComparison.Ordinal))
                        && !Path.GetFileName(f).StartsWith('.'))
            .Order(StringComparer.Ordinal)
            .ToList();

    /// <summary>Loads each file, then checks names and domain/repository overlaps across files.</summary>
    public static PolicySetResult LoadFiles(IEnumerable<string> paths) => Combine(paths.Select(LoadFile));

    /// <summary>
    /// Cross-file checks over already loaded files: a policy whose name or domain/repository pair
    /// clashes with a policy of an earlier valid file makes its own (later) file invalid.
    /// </summary>
    public static PolicySetResult Combine(IEnumerable<PolicyFileResult> files)
    {
        var accepted = new List<PolicyDefinition>();
        var results = new List<PolicyFileResult>();
        foreach (var file in files)
        {
            if (!file.IsValid) { results.Add(file); continue; }
            var errors = PolicySetChecks.Check(accepted, file.Policies, file.Path);
            if (errors.Count > 0)
            {
                results.Add(file with { Policies = [], Errors = errors });
                continue;
            }
            accepted.AddRange(file.Policies);
            results.Add(file);
        }
        return new PolicySetResult(results);
    }

    /// <summary>
    /// Reads and parses one file. Missing, unreadable, oversized files and anything but a regular file
    /// (a FIFO, a device, a directory, also behind a symlink) are reported as errors, not thrown, and never block.
    /// </summary>
    public static PolicyFileResult LoadFile(string path)
    {
        byte[] bytes;
        try
        {
            bytes = RegularFile.ReadAll(path, MaxFileBytes);
        }
        catch (FileRefusedException e)
        {
            return e.Refusal == FileRefusal.TooLarge ? TooLarge(path, e.Size) : Fail(path, 1, 1, e.Problem);
        }
        return Parse(bytes, path);
    }

    /// <summary>Loads one file, throwing <see cref="PolicyLoadException"/> with every error when it is not valid.</summary>
    public static IReadOnlyList<PolicyDefinition> LoadFileOrThrow(string path)
    {
        var result = LoadFile(path);
        return result.IsValid ? result.Policies : throw new PolicyLoadException(result.Errors);
    }

    /// <summary>Parses the raw bytes of a policy file (UTF-8, optionally with a byte order mark).</summary>
    public static PolicyFileResult Parse(ReadOnlySpan<byte> bytes, string path)
    {
        if (bytes.Length > MaxFileBytes) return TooLarge(path, bytes.Length);
        if (bytes.StartsWith((ReadOnlySpan<byte>)[0xFF, 0xFE]) || bytes.StartsWith((ReadOnlySpan<byte>)[0xFE, 0xFF]))
            return Fail(path, 1, 1, "file is UTF-16 encoded; save it as UTF-8");
        if (bytes.StartsWith((ReadOnlySpan<byte>)[0xEF, 0xBB, 0xBF])) bytes = bytes[3..];
        if (Utf8.IsValid(bytes)) return ParseText(Encoding.UTF8.GetString(bytes), path);
        var bad = FirstInvalidUtf8(bytes);
        var prefix = Encoding.UTF8.GetString(bytes[..bad]);
        var line = prefix.Count(c => c == '\n') + 1;
        var column = prefix.Length - (prefix.LastIndexOf('\n') + 1) + 1;
        return Fail(path, line, column, $"not valid UTF-8 (byte 0x{bytes[bad]:X2} at offset {bad}); save the file as UTF-8");
    }

    /// <summary>Parses policy file text. <paramref name="path"/> names the file in messages and anchors relative repository paths.</summary>
    public static PolicyFileResult ParseText(string text, string path)
    {
        if (text.Length > MaxFileBytes) return TooLarge(path, Encoding.UTF8.GetByteCount(text));
        var errors = new ErrorList(path);
        FindIndentationTabs(text, errors);
        if (errors.Count > 0) return errors.Result([]);

        var (documents, problem) = YamlTree.Parse(text);
        if (problem is not null) return Fail(path, problem.Line, problem.Column, problem.Message);
        var bodies = documents.Where(d => d is not YScalar { IsNull: true }).ToList();
        if (bodies.Count == 0)
            return Fail(path, 1, 1, "file is empty; expected a 'policies:' list or a single policy mapping (see docs/policies.md)");

        var policies = new List<PolicyDefinition>();
        var baseDirectory = Path.GetDirectoryName(Path.GetFullPath(path)) ?? "/";
        var reader = new PolicyReader(errors, path, baseDirectory);
        foreach (var body in bodies) ReadDocument(body, reader, policies, errors);
        foreach (var error in PolicySetChecks.CheckWithin(policies, path)) errors.Add(error.Line, error.Column, error.Message);
        return errors.Count > 0 ? errors.Result([]) : errors.Result(policies);
    }

    private static void ReadDocument(YNode body, PolicyReader reader, List<PolicyDefinition> policies, ErrorList errors)
    {
        if (body is not YMapping root)
        {
            errors.Add(body, "expected a 'policies:' list or a single policy mapping (keys like 'name:', 'domains:', 'schedule:')");
            return;
        }
        var list = root.Entries.Where(e => e.Key.Value == "policies").ToList();
        if (list.Count == 0)
        {
            if (reader.Read(root) is { } single) policies.Add(single);
            return;
        }
        foreach (var (key, _) in root.Entries.Where(e => e.Key.Value != "policies"))
            errors.Add(key, $"unexpected top-level key '{key.Value}' beside 'policies:'; a file holds either a 'policies:' list or a single policy");
        foreach (var (key, _) in list.Skip(1))
            errors.Add(key, $"key 'policies' is given twice (first at line {list[0].Key.Line}, column {list[0].Key.Column})");
        switch (list[0].Value)
        {
            case YSequence { Items.Count: > 0 } sequence:
                foreach (var item in sequence.Items)
                {
                    if (item is YMapping mapping) { if (reader.Read(mapping) is { } p) policies.Add(p); }
                    else errors.Add(item, "expected a policy mapping (keys like 'name:', 'domains:', 'schedule:') as a list item");
                }
                break;
            case var other:
                errors.Add(other, "'policies' expects a non-empty list of policy mappings ('- name: ...')");
                break;
        }
    }

    /// <summary>YAML forbids tabs in indentation; YamlDotNet's own message for it is cryptic, so report each such line.</summary>
    private static void FindIndentationTabs(string text, ErrorList errors)
    {
        var line = 1;
        var lineStart = 0;
        for (var i = 0; i <= text.Length; i++)
        {
            if (i < text.Length && text[i] != '\n') continue;
            for (var j = lineStart; j < i && text[j] is ' ' or '\t' or '-'; j++)
            {
                if (text[j] != '\t') continue;
                errors.Add(line, j - lineStart + 1, "tab character in indentation; YAML indents with spaces only");
                break;
            }
            line++;
            lineStart = i + 1;
        }
    }

    private static int FirstInvalidUtf8(ReadOnlySpan<byte> bytes)
    {
        var buffer = new char[bytes.Length];
        Utf8.ToUtf16(bytes, buffer, out var bytesRead, out _, replaceInvalidSequences: false);
        return bytesRead;
    }

    private static PolicyFileResult TooLarge(string path, long length) =>
        Fail(path, 1, 1, $"file is {length} bytes; a policy file may be at most {MaxFileBytes} bytes (1 MiB): split it into several files");

    private static PolicyFileResult Fail(string path, int line, int column, string message) =>
        new(path, [], [new PolicyError(path, line, column, message)]);
}

/// <summary>Collects errors for one file, capped so a pathological file cannot produce millions of lines.</summary>
internal sealed class ErrorList(string path)
{
    private readonly List<PolicyError> _errors = [];
    private int _dropped;

    public int Count => _errors.Count + _dropped;

    public void Add(int line, int column, string message)
    {
        if (_errors.Count < PolicyLoader.MaxErrorsPerFile) _errors.Add(new PolicyError(path, line, column, message));
        else _dropped++;
    }

    public void Add(YNode node, string message) => Add(node.Line, node.Column, message);

    public PolicyFileResult Result(IReadOnlyList<PolicyDefinition> policies)
    {
        var errors = _errors.ToList();
        if (_dropped > 0) errors.Add(new PolicyError(path, errors[^1].Line, errors[^1].Column, $"{_dropped} more errors not shown"));
        return new PolicyFileResult(path, policies, errors);
    }
}
