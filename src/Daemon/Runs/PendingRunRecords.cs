using System.Text.Json;
using Backupd.Storage.Catalog;

namespace Backupd.Daemon.Runs;

/// <summary>
/// The final catalog record of a run that could not be written when the run ended (the catalog was
/// unreachable): its state, error, counters and, for a run whose repository commit returned, the restore
/// point. <see cref="Host"/>/<see cref="Pid"/>/<see cref="ProcessStart"/> name the process that wrote it,
/// so nobody else replays it while that process is still retrying.
/// </summary>
public sealed record PendingRunRecord(
    long RunId, Guid DomainUuid, string DomainName, string State, string Step, long ProgressBytes, long? ProgressTotal, string? Error,
    RunStats Stats, RestorePointRecord? Point, string Host, int Pid, string ProcessStart);

/// <summary>
/// <c>STATE/catalog-pending/RUNID.json</c>: final run records waiting for the catalog. Written (fsynced, then
/// renamed into place) before the runner starts retrying, removed once the catalog has the record; a record
/// left by a process that ended is written by the next daemon start, run or `backupd recover`
/// (<see cref="RunRecordFinisher"/>). Lives on the host's local state directory, like the run journal.
/// </summary>
public sealed class PendingRunRecords(string stateDirectory)
{
    private static readonly JsonSerializerOptions Json = new(JsonSerializerDefaults.Web) { WriteIndented = true };

    public string Directory { get; } = Path.Combine(stateDirectory, "catalog-pending");

    public void Save(PendingRunRecord record)
    {
        System.IO.Directory.CreateDirectory(Directory);
        var path = PathOf(record.RunId);
        var temp = path + ".tmp";
        using (var stream = new FileStream(temp, FileMode.Create, FileAccess.Write, FileShare.None))
        {
            JsonSerializer.Serialize(stream, record, Json);
            stream.Flush(flushToDisk: true);
        }
        File.Move(temp, path, overwrite: true);
    }

    public void Remove(long runId) => File.Delete(PathOf(runId));

    /// <summary>Renames a record that cannot be written to RUNID.json.unrecorded (no longer listed); returns the new path.</summary>
    public string SetAside(long runId)
    {
        var aside = PathOf(runId) + ".unrecorded";
        File.Move(PathOf(runId), aside, overwrite: true);
        return aside;
    }

    /// <summary>Every readable record; an unreadable file is reported through <paramref name="unreadable"/> and left in place for a human.</summary>
    public IReadOnlyList<PendingRunRecord> List(Action<string, string>? unreadable = null)
    {
        if (!System.IO.Directory.Exists(Directory)) return [];
        var records = new List<PendingRunRecord>();
        foreach (var file in System.IO.Directory.EnumerateFiles(Directory, "*.json").Order(StringComparer.Ordinal))
        {
            try
            {
                if (JsonSerializer.Deserialize<PendingRunRecord>(File.ReadAllText(file), Json) is { } r) records.Add(r);
            }
            catch (Exception e) when (e is JsonException or IOException or NotSupportedException)
            {
                unreadable?.Invoke(file, e.Message);
            }
        }
        return records;
    }

    private string PathOf(long runId) => Path.Combine(Directory, runId.ToString(System.Globalization.CultureInfo.InvariantCulture) + ".json");
}
