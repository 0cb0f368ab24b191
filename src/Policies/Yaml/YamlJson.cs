using System.Globalization;
using System.Text.Json.Nodes;

namespace Backupd.Policies.Yaml;

/// <summary>
/// Converts a policy file's YAML to JSON the way editors do before applying the JSON Schema:
/// plain scalars that read as YAML 1.2 core null, booleans or integers become JSON null, booleans
/// or numbers; everything else is a string.
/// </summary>
public static class YamlJson
{
    /// <summary>One JSON node per YAML document; throws <see cref="FormatException"/> when the text is not YAML.</summary>
    public static IReadOnlyList<JsonNode?> Convert(string text)
    {
        var (documents, problem) = YamlTree.Parse(text);
        if (problem is not null) throw new FormatException($"{problem.Line}:{problem.Column}: {problem.Message}");
        return documents.Select(ToJson).ToList();
    }

    private static JsonNode? ToJson(YNode node) => node switch
    {
        YScalar { IsNull: true } => null,
        YScalar { Quoted: false, Value: "true" } => JsonValue.Create(true),
        YScalar { Quoted: false, Value: "false" } => JsonValue.Create(false),
        YScalar { Quoted: false } s when long.TryParse(s.Value, NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out var n) => JsonValue.Create(n),
        YScalar s => JsonValue.Create(s.Value),
        YSequence seq => new JsonArray(seq.Items.Select(ToJson).ToArray()),
        YMapping map => ToObject(map),
        _ => null,
    };

    private static JsonObject ToObject(YMapping map)
    {
        var result = new JsonObject();
        foreach (var (key, value) in map.Entries) result[key.Value] = ToJson(value);
        return result;
    }
}
