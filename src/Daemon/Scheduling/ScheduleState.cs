using System.Text.Json;

namespace Backupd.Daemon.Scheduling;

/// <summary>
/// The last fire time of each policy, kept in the state directory so that a schedule missed
/// while the daemon was down can be caught up at start-up. Written atomically (temp file, fsync,
/// rename); a missing or unreadable file means "no history" (no catch-up), never a failure.
/// </summary>
public sealed class ScheduleState
{
    public const string FileName = "schedule-state.json";

    private readonly string? _path;
    private readonly Dictionary<string, DateTimeOffset> _lastFires;
    private readonly Lock _lock = new();

    private ScheduleState(string? path, Dictionary<string, DateTimeOffset> lastFires)
    {
        _path = path;
        _lastFires = lastFires;
    }

    /// <summary>State kept only in memory (tests, or no state directory).</summary>
    public static ScheduleState InMemory() => new(null, new(StringComparer.Ordinal));

    public static ScheduleState Load(string stateDirectory)
    {
        var path = Path.Combine(stateDirectory, FileName);
        try
        {
            var data = File.Exists(path) ? JsonSerializer.Deserialize<Dictionary<string, DateTimeOffset>>(File.ReadAllText(path)) : null;
            return new ScheduleState(path, new Dictionary<string, DateTimeOffset>(data ?? [], StringComparer.Ordinal));
        }
        catch (Exception e) when (e is IOException or JsonException or UnauthorizedAccessException)
        {
            return new ScheduleState(path, new(StringComparer.Ordinal));
        }
    }

    public DateTimeOffset? LastFire(string policy)
    {
        lock (_lock) return _lastFires.TryGetValue(policy, out var t) ? t : null;
    }

    public void RecordFire(string policy, DateTimeOffset at)
    {
        lock (_lock)
        {
            if (_lastFires.TryGetValue(policy, out var previous) && previous >= at) return;
            _lastFires[policy] = at;
            if (_path is null) return;
            Directory.CreateDirectory(Path.GetDirectoryName(_path)!);
            var temp = _path + ".tmp";
            using (var stream = new FileStream(temp, FileMode.Create, FileAccess.Write, FileShare.None))
            {
                JsonSerializer.Serialize(stream, _lastFires);
                stream.Flush(flushToDisk: true);
            }
            File.Move(temp, _path, overwrite: true);
        }
    }
}
