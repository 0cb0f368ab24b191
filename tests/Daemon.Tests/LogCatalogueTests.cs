using System.Reflection;
using System.Text.RegularExpressions;
using Backupd.Daemon.Workflow;
using Microsoft.Extensions.Logging;

namespace Backupd.Daemon.Tests;

/// <summary>
/// The log events operators match alerts on: the table in docs/operations.md and the [LoggerMessage] methods
/// agree on id, name and level, and no two methods share an id (an alert must mean one thing).
/// </summary>
public sealed partial class LogCatalogueTests
{
    /// <summary>First id of each folder's range (docs/operations.md, "Log events"); each range holds 1000 ids.</summary>
    private static readonly Dictionary<string, int> RangeStart = new(StringComparer.Ordinal)
    {
        ["Workflow"] = 1000, ["Runs"] = 2000, ["Scheduling"] = 3000, ["Hosting"] = 4000, ["Cli"] = 5000, ["Restore"] = 6000,
    };

    private static List<(MethodInfo Method, LoggerMessageAttribute Event)> Events() =>
        typeof(BackupWorkflow).Assembly.GetTypes()
            .SelectMany(t => t.GetMethods(BindingFlags.Static | BindingFlags.Public | BindingFlags.NonPublic))
            .Select(m => (Method: m, Event: m.GetCustomAttribute<LoggerMessageAttribute>()!))
            .Where(x => x.Event is not null)
            .ToList();

    [Fact]
    public void Every_documented_event_is_logged_with_its_id_name_and_level()
    {
        var byId = Events().ToDictionary(e => e.Event.EventId);
        var rows = DocumentedEvents();
        Assert.Contains(rows, r => r.Id == 1004 && r.Name == "OverlayLeftBehind"); // the table was found and read
        foreach (var (id, level, name) in rows)
        {
            Assert.True(byId.TryGetValue(id, out var logged), $"docs/operations.md lists event {id} ({name}), but no [LoggerMessage] method has it");
            Assert.Equal((id, name, level), (logged.Event.EventId, logged.Event.EventName, logged.Event.Level));
        }
    }

    [Fact]
    public void Event_ids_are_unique_and_inside_their_folders_range()
    {
        var events = Events();
        Assert.NotEmpty(events);
        foreach (var clash in events.GroupBy(e => e.Event.EventId).Where(g => g.Count() > 1))
            Assert.Fail($"event id {clash.Key} is used by {string.Join(", ", clash.Select(e => $"{e.Method.DeclaringType!.Name}.{e.Method.Name}"))}");
        foreach (var (method, e) in events)
        {
            var folder = method.DeclaringType!.Namespace!.Split('.').Last();
            if (!RangeStart.TryGetValue(folder, out var start)) continue; // a folder whose range this test does not know yet
            Assert.InRange(e.EventId, start, start + 999);
        }
    }

    private static List<(int Id, LogLevel Level, string Name)> DocumentedEvents()
    {
        var doc = File.ReadAllText(Path.Combine(ConfigLoaderTests.RepoRoot(), "docs", "operations.md"));
        var section = doc[doc.IndexOf("### Log events", StringComparison.Ordinal)..];
        var rows = new List<(int, LogLevel, string)>();
        foreach (Match m in Row().Matches(section))
        {
            var ids = Split(m.Groups["ids"].Value).Select(int.Parse).ToList();
            var levels = Split(m.Groups["levels"].Value).Select(Enum.Parse<LogLevel>).ToList();
            var names = Split(m.Groups["names"].Value);
            Assert.Equal(ids.Count, names.Count);
            for (var i = 0; i < ids.Count; i++) rows.Add((ids[i], levels.Count == 1 ? levels[0] : levels[i], names[i]));
        }
        return rows;
    }

    private static List<string> Split(string cell) => [.. cell.Split(',', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries)];

    [GeneratedRegex(@"^\| (?<ids>\d[\d, ]*) \| (?<levels>[A-Za-z, ]+) \| (?<names>[A-Za-z, ]+) \|", RegexOptions.Multiline)]
    private static partial Regex Row();
}
