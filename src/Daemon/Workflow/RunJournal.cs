using System.Runtime.InteropServices;
using System.Text.Json;
using Backupd.Daemon.Libvirt;

namespace Backupd.Daemon.Workflow;

/// <summary>Journal steps, in order.</summary>
public enum RunStep
{
    Journaled,
    /// <summary>Checkpoint NEW exists (changed-block tracking); the snapshot is next.</summary>
    CheckpointCreated,
    SnapshotCreated,
    /// <summary>Reading the dirty map of the frozen base through qemu-nbd (its pid is in <see cref="JournalEntry.ExportPid"/>).</summary>
    Mapping,
    Copying,
    Copied,
    Committing,
    /// <summary>Point durable, every disk on its base: deleting the previous good checkpoint.</summary>
    Rotating,
    Finished,
}

/// <summary>One disk of a run: where it was before the snapshot and which overlay the run gave it.</summary>
public sealed record JournalDisk(string Target, DiskBase Base, string OverlayPath)
{
    /// <summary>Set once libvirt reports the disk back on its base: the overlay then holds no unmerged data.</summary>
    public bool Merged { get; set; }
    public bool OverlayDeleted { get; set; }
}

/// <summary>What recovery needs to know about a run even when PostgreSQL (or the domain) is gone.</summary>
public sealed record JournalEntry
{
    public required string RunId { get; init; }
    public required string DomainUuid { get; init; }
    public required string DomainName { get; init; }
    public required bool Persistent { get; init; }
    public required bool WasActive { get; init; }
    public required List<JournalDisk> Disks { get; init; }
    public RunStep Step { get; set; } = RunStep.Journaled;
    public DateTimeOffset StartedAt { get; init; }
    public DateTimeOffset UpdatedAt { get; set; }
    public string? Error { get; set; }
    /// <summary>The quiesce outcome as JSON (<see cref="QuiesceReport"/>), once the snapshot was tried.</summary>
    public string? Quiesce { get; set; }
    /// <summary>The checkpoint this run created (or is about to create) before its snapshot: recovery deletes it unless <see cref="PointId"/> is set.</summary>
    public string? CheckpointNew { get; set; }
    /// <summary>Set right after the restore point was committed: from then on NEW belongs to a durable point.</summary>
    public string? PointId { get; set; }
    /// <summary>The qemu-nbd export of a frozen base being mapped; stopped before the commit, and by recovery when a run died meanwhile.</summary>
    public int? ExportPid { get; set; }
}

/// <summary>
/// The local run journal: STATE/journal/&lt;runid&gt;.json, written before the snapshot and at each
/// step, each time as write-temp, fsync, rename, fsync directory. Finished runs move to journal/done.
/// </summary>
public sealed class RunJournal(string stateDirectory)
{
    // Source-generated: a CLI backup writes the journal within its first half second, before any reflection serializer would be warm.
    private static readonly System.Text.Json.Serialization.Metadata.JsonTypeInfo<JournalEntry> Json = JournalJsonContext.Default.JournalEntry;

    public string Directory { get; } = Path.Combine(stateDirectory, "journal");
    private string DoneDirectory => Path.Combine(Directory, "done");

    public void Write(JournalEntry entry)
    {
        System.IO.Directory.CreateDirectory(Directory);
        entry.UpdatedAt = DateTimeOffset.UtcNow;
        var path = Path.Combine(Directory, entry.RunId + ".json");
        var temp = path + ".tmp";
        using (var stream = new FileStream(temp, FileMode.Create, FileAccess.Write, FileShare.None))
        {
            JsonSerializer.Serialize(stream, entry, Json);
            stream.Flush(flushToDisk: true);
        }
        File.Move(temp, path, overwrite: true);
        Durable.FsyncDirectory(Directory);
    }

    /// <summary>Moves a finished run out of the open set (kept for the operator's history).</summary>
    public void Close(JournalEntry entry)
    {
        entry.Step = RunStep.Finished;
        Write(entry);
        System.IO.Directory.CreateDirectory(DoneDirectory);
        File.Move(Path.Combine(Directory, entry.RunId + ".json"), Path.Combine(DoneDirectory, entry.RunId + ".json"), overwrite: true);
        Durable.FsyncDirectory(Directory);
    }

    /// <summary>Runs that did not finish (a crash, a kill, or an overlay left for the operator).</summary>
    public IReadOnlyList<JournalEntry> OpenEntries()
    {
        if (!System.IO.Directory.Exists(Directory)) return [];
        var entries = new List<JournalEntry>();
        foreach (var file in System.IO.Directory.EnumerateFiles(Directory, "*.json").Order(StringComparer.Ordinal))
        {
            try
            {
                var entry = JsonSerializer.Deserialize(File.ReadAllText(file), Json);
                if (entry is not null) entries.Add(entry);
            }
            catch (JsonException)
            {
                // A torn temp file cannot end in .json (rename is atomic); a bad one is left for the operator.
            }
        }
        return entries;
    }

    public JournalEntry? Find(string runId) => OpenEntries().FirstOrDefault(e => e.RunId == runId);
}

/// <summary>The journal's JSON: web names, indented, steps by name (as the files always had them).</summary>
[System.Text.Json.Serialization.JsonSourceGenerationOptions(JsonSerializerDefaults.Web, WriteIndented = true, UseStringEnumConverter = true)]
[System.Text.Json.Serialization.JsonSerializable(typeof(JournalEntry))]
internal sealed partial class JournalJsonContext : System.Text.Json.Serialization.JsonSerializerContext;

/// <summary>fsync of a directory, so a rename inside it survives a power cut; and the one-JSON-file-per-entry journals built on it.</summary>
internal static partial class Durable
{
    /// <summary>DIR/ID.json written crash-safely: temp file, fsync, rename over, fsync of the directory.</summary>
    public static void WriteJsonEntry<T>(string directory, string id, T entry, System.Text.Json.JsonSerializerOptions json)
    {
        Directory.CreateDirectory(directory);
        var path = Path.Combine(directory, id + ".json");
        using (var stream = new FileStream(path + ".tmp", FileMode.Create, FileAccess.Write, FileShare.None))
        {
            System.Text.Json.JsonSerializer.Serialize(stream, entry, json);
            stream.Flush(flushToDisk: true);
        }
        File.Move(path + ".tmp", path, overwrite: true);
        FsyncDirectory(directory);
    }

    /// <summary>Every DIR/*.json entry in name order; a file that does not parse is left for the operator (a torn write never ends in .json).</summary>
    public static IReadOnlyList<T> ReadJsonEntries<T>(string directory, System.Text.Json.JsonSerializerOptions json)
    {
        if (!Directory.Exists(directory)) return [];
        var entries = new List<T>();
        foreach (var file in Directory.EnumerateFiles(directory, "*.json").Order(StringComparer.Ordinal))
        {
            try
            {
                if (System.Text.Json.JsonSerializer.Deserialize<T>(File.ReadAllText(file), json) is { } e) entries.Add(e);
            }
            catch (System.Text.Json.JsonException)
            {
            }
        }
        return entries;
    }

    private const int O_RDONLY = 0, O_DIRECTORY = 0x10000;

    [LibraryImport("libc", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    private static partial int open(string path, int flags);

    [LibraryImport("libc", SetLastError = true)]
    private static partial int fsync(int fd);

    [LibraryImport("libc")]
    private static partial int close(int fd);

    public static void FsyncDirectory(string path)
    {
        var fd = open(path, O_RDONLY | O_DIRECTORY);
        if (fd < 0) throw new IOException($"cannot open directory '{path}' to fsync it (errno {Marshal.GetLastPInvokeError()})");
        try
        {
            if (fsync(fd) < 0) throw new IOException($"fsync of directory '{path}' failed (errno {Marshal.GetLastPInvokeError()})");
        }
        finally { _ = close(fd); }
    }
}
