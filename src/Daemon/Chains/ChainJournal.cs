using System.Text.Json;
using System.Text.Json.Serialization;
using Backupd.Daemon.Libvirt;
using Backupd.Daemon.Workflow;

namespace Backupd.Daemon.Chains;

/// <summary>Steps of a chain operation, in order; recovery decides from the step and what libvirt shows.</summary>
public enum ChainStep
{
    Journaled,
    JobStarted,
    PivotRequested,
    JobDone,
    DefinitionUpdated,
    Finished,
}

/// <summary>
/// One shorten or move-disk as recovery needs it after a kill: the chain before (paths by index), what the disk
/// should end on, and which files may be deleted once nothing references them.
/// </summary>
public sealed record ChainJournalEntry
{
    /// <summary>The fields every operation journals first: who, which disk, the chain as it was; the caller adds its own with `with`.</summary>
    public static ChainJournalEntry Begin(string operation, DomainInfo domain, DomainDisk disk, DiskChain chain, string finalActive, string finalFormat) => new()
    {
        Id = ChainJournal.NewId(DateTimeOffset.UtcNow),
        Operation = operation,
        DomainUuid = domain.Uuid,
        DomainName = domain.Name,
        Target = disk.Target,
        Live = domain.IsActive,
        ChainBefore = [.. chain.Layers.Select(l => l.Path)],
        FormatsBefore = [.. chain.Layers.Select(l => l.Format)],
        FinalActive = finalActive,
        FinalFormat = finalFormat,
    };

    public required string Id { get; init; }
    public required string Operation { get; init; } // "shorten" | "move-disk"
    public required string DomainUuid { get; init; }
    public required string DomainName { get; init; }
    public required string Target { get; init; }
    public required bool Live { get; init; }
    public required List<string> ChainBefore { get; init; }
    public List<string?> FormatsBefore { get; init; } = [];
    public string? Method { get; init; }
    public bool ActiveCommit { get; init; }
    public int? TopIndex { get; init; }
    public int? BaseIndex { get; init; }
    /// <summary>The active image once done (a shorten's merged-into layer, a move's destination).</summary>
    public required string FinalActive { get; init; }
    public required string FinalFormat { get; init; }
    public string DiskType { get; init; } = "file";
    /// <summary>Files to delete once done, if no definition references them.</summary>
    public List<string> DeleteAfter { get; init; } = [];
    /// <summary>move-disk: the destination exists only because of this operation (removed when it is undone).</summary>
    public bool DestinationCreated { get; init; }
    public ChainStep Step { get; set; } = ChainStep.Journaled;
    public long? CatalogRunId { get; set; }
    public DateTimeOffset StartedAt { get; init; } = DateTimeOffset.UtcNow;
    public DateTimeOffset UpdatedAt { get; set; }
    public string? Error { get; set; }
}

/// <summary>
/// STATE/chains/&lt;id&gt;.json, written before the job starts and at each step (temp file, fsync, rename, fsync
/// directory, like the run journal); finished operations move to chains/done.
/// </summary>
public sealed class ChainJournal(string stateDirectory)
{
    private static readonly JsonSerializerOptions Json = new(JsonSerializerDefaults.Web) { WriteIndented = true, Converters = { new JsonStringEnumConverter() } };

    public string Directory { get; } = Path.Combine(stateDirectory, "chains");

    public static string NewId(DateTimeOffset now) => $"{now.UtcDateTime:yyyyMMddTHHmmssZ}-{Guid.NewGuid():N}"[..25];

    public void Write(ChainJournalEntry entry)
    {
        entry.UpdatedAt = DateTimeOffset.UtcNow;
        Durable.WriteJsonEntry(Directory, entry.Id, entry, Json);
    }

    public void Step(ChainJournalEntry entry, ChainStep step)
    {
        entry.Step = step;
        Write(entry);
    }

    public void Close(ChainJournalEntry entry)
    {
        entry.Step = ChainStep.Finished;
        Write(entry);
        var done = Path.Combine(Directory, "done");
        System.IO.Directory.CreateDirectory(done);
        File.Move(Path.Combine(Directory, entry.Id + ".json"), Path.Combine(done, entry.Id + ".json"), overwrite: true);
        Durable.FsyncDirectory(Directory);
    }

    public IReadOnlyList<ChainJournalEntry> OpenEntries() => Durable.ReadJsonEntries<ChainJournalEntry>(Directory, Json);
}
