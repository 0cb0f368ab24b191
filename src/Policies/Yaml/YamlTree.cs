using YamlDotNet.Core;
using YamlDotNet.Core.Events;

namespace Backupd.Policies.Yaml;

/// <summary>
/// A minimal YAML document tree with the position of every node, built from YamlDotNet's event
/// parser. Unlike YamlStream it keeps duplicate keys (so the loader can report them with both
/// positions), resolves aliases without copying, and bounds nesting depth.
/// </summary>
public abstract record YNode(int Line, int Column);

public sealed record YScalar(string Value, bool Quoted, int Line, int Column) : YNode(Line, Column)
{
    /// <summary>A plain (unquoted) null: empty, '~' or 'null'.</summary>
    public bool IsNull => !Quoted && Value is "" or "~" or "null" or "Null" or "NULL";
}

public sealed record YSequence(IReadOnlyList<YNode> Items, int Line, int Column) : YNode(Line, Column);

public sealed record YMapping(IReadOnlyList<KeyValuePair<YScalar, YNode>> Entries, int Line, int Column) : YNode(Line, Column);

/// <summary>A YAML problem with its 1-based position.</summary>
public sealed record YamlProblem(int Line, int Column, string Message);

/// <summary>The one YAML parser of policies and the daemon configuration: positions kept, nesting bounded (no stack overflow on hostile input).</summary>
public static class YamlTree
{
    public const int MaxDepth = 64;

    /// <summary>Parses all documents of <paramref name="text"/>; on a syntax error returns the problem instead.</summary>
    public static (IReadOnlyList<YNode> Documents, YamlProblem? Problem) Parse(string text)
    {
        var documents = new List<YNode>();
        TrackingParser? tracker = null;
        try
        {
            var parser = new TrackingParser(new Parser(new StringReader(text)));
            tracker = parser;
            var anchors = new Dictionary<string, YNode>(StringComparer.Ordinal);
            parser.Consume<StreamStart>();
            while (parser.TryConsume<DocumentStart>(out _))
            {
                documents.Add(ReadNode(parser, anchors, 0));
                parser.Consume<DocumentEnd>();
            }
            parser.Consume<StreamEnd>();
            return (documents, null);
        }
        catch (DepthException e)
        {
            return ([], new YamlProblem(e.Line, e.Column, $"nesting deeper than {MaxDepth} levels"));
        }
        catch (AliasException e)
        {
            return ([], new YamlProblem(e.Line, e.Column, $"alias '*{e.Name}' refers to no earlier anchor '&{e.Name}'"));
        }
        catch (YamlException e)
        {
            var message = (e.InnerException?.Message ?? e.Message).Trim();
            // YamlDotNet prefixes some messages with its own "(Line: a, Col: b, …)": the position is ours to print.
            var close = message.StartsWith("(Line:", StringComparison.Ordinal) ? message.IndexOf("): ", StringComparison.Ordinal) : -1;
            if (close > 0) message = message[(close + 3)..];
            return ([], new YamlProblem((int)e.Start.Line, (int)e.Start.Column, $"not valid YAML: {message}"));
        }
        catch (Exception e) when (e is InvalidOperationException or ArgumentException or IndexOutOfRangeException or FormatException or OverflowException)
        {
            // YamlDotNet occasionally fails with a plain exception on malformed input; report where it was reading.
            var at = tracker?.LastStart;
            return ([], new YamlProblem((int)(at?.Line ?? 1), (int)(at?.Column ?? 1), "not valid YAML: the parser could not read past this point (check quotes, brackets and indentation)"));
        }
    }

    private static YNode ReadNode(IParser parser, Dictionary<string, YNode> anchors, int depth)
    {
        var start = parser.Current!.Start;
        if (depth > MaxDepth) throw new DepthException((int)start.Line, (int)start.Column);
        YNode node;
        string? anchor = null;
        switch (parser.Current)
        {
            case AnchorAlias alias:
                parser.MoveNext();
                return anchors.TryGetValue(alias.Value.Value, out var target)
                    ? target
                    : throw new AliasException(alias.Value.Value, (int)start.Line, (int)start.Column);
            case Scalar scalar:
                parser.MoveNext();
                anchor = scalar.Anchor.IsEmpty ? null : scalar.Anchor.Value;
                node = new YScalar(scalar.Value, scalar.Style is not ScalarStyle.Plain, (int)start.Line, (int)start.Column);
                break;
            case SequenceStart sequenceStart:
                parser.MoveNext();
                anchor = sequenceStart.Anchor.IsEmpty ? null : sequenceStart.Anchor.Value;
                var items = new List<YNode>();
                while (!parser.TryConsume<SequenceEnd>(out _)) items.Add(ReadNode(parser, anchors, depth + 1));
                node = new YSequence(items, (int)start.Line, (int)start.Column);
                break;
            case MappingStart mappingStart:
                parser.MoveNext();
                anchor = mappingStart.Anchor.IsEmpty ? null : mappingStart.Anchor.Value;
                var entries = new List<KeyValuePair<YScalar, YNode>>();
                while (!parser.TryConsume<MappingEnd>(out _))
                {
                    var keyStart = parser.Current!.Start;
                    var key = ReadNode(parser, anchors, depth + 1);
                    var value = ReadNode(parser, anchors, depth + 1);
                    // Complex keys (lists/maps as keys) never make sense in a policy: keep them visible as a non-matching key.
                    var keyScalar = key as YScalar ?? new YScalar("<complex key>", false, (int)keyStart.Line, (int)keyStart.Column);
                    entries.Add(new(keyScalar, value));
                }
                node = new YMapping(entries, (int)start.Line, (int)start.Column);
                break;
            default:
                throw new YamlException(start, parser.Current!.End, $"unexpected {parser.Current!.GetType().Name}");
        }
        if (anchor is not null) anchors[anchor] = node;
        return node;
    }

    /// <summary>Remembers where the last event started, for errors that YamlDotNet raises without a position.</summary>
    private sealed class TrackingParser(IParser inner) : IParser
    {
        public Mark? LastStart { get; private set; }
        public ParsingEvent? Current => inner.Current;

        public bool MoveNext()
        {
            if (inner.Current is { } current) LastStart = current.End;
            return inner.MoveNext();
        }
    }

    private sealed class DepthException(int line, int column) : Exception
    {
        public int Line { get; } = line;
        public int Column { get; } = column;
    }

    private sealed class AliasException(string name, int line, int column) : Exception
    {
        public string Name { get; } = name;
        public int Line { get; } = line;
        public int Column { get; } = column;
    }
}
