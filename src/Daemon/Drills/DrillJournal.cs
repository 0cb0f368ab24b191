using System.Text.Json;
using Backupd.Daemon.Workflow;

namespace Backupd.Daemon.Drills;

/// <summary>
/// One drill or instant restore as `recover` needs it after a kill: the domain it started, the directory of its
/// overlays, the process that ran it. Written before anything is created, removed once everything is gone
/// (drill) or the new domain depends on nothing in the repository (instant restore).
/// </summary>
public sealed record DrillJournalEntry
{
    public const string Drill = "drill", Instant = "instant-restore";

    public required string Id { get; init; }
    public required string Kind { get; init; }
    public required string SourceDomain { get; init; }
    public required Guid SourceUuid { get; init; }
    public required string PointId { get; init; }
    public required string Repository { get; init; }
    /// <summary>The domain this operation defines/starts (drills: backupd-drill-ID).</summary>
    public required string DomainName { get; init; }
    /// <summary>Overlays (and a reconstructed point) live here; a drill's is removed whole.</summary>
    public required string Directory { get; init; }
    public required int Pid { get; init; }
    public required string ProcessStart { get; init; }
    public long? CatalogRunId { get; set; }
    /// <summary>Instant restore: disk target → its overlay (the image the new domain keeps).</summary>
    public Dictionary<string, string> Overlays { get; init; } = [];
    public DateTimeOffset StartedAt { get; init; } = DateTimeOffset.UtcNow;
}

/// <summary>STATE/drills/&lt;id&gt;.json (temp file, fsync, rename, fsync directory, like the run journal).</summary>
public sealed class DrillJournal(string stateDirectory)
{
    private static readonly JsonSerializerOptions Json = new(JsonSerializerDefaults.Web) { WriteIndented = true };

    public string Directory { get; } = Path.Combine(stateDirectory, "drills");

    public void Write(DrillJournalEntry entry)
    {
        Durable.WriteJsonEntry(Directory, entry.Id, entry, Json);
    }

    public void Remove(DrillJournalEntry entry)
    {
        File.Delete(Path.Combine(Directory, entry.Id + ".json"));
        if (System.IO.Directory.Exists(Directory)) Durable.FsyncDirectory(Directory);
    }

    public IReadOnlyList<DrillJournalEntry> OpenEntries() => Durable.ReadJsonEntries<DrillJournalEntry>(Directory, Json);
}
