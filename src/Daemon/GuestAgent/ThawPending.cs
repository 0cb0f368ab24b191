using System.Text.Json;

namespace Backupd.Daemon.GuestAgent;

/// <summary>A domain whose thaw could not be confirmed: its agent may still run a freeze when it wakes.</summary>
public sealed record PendingThaw(string DomainUuid, string DomainName, string RunId, DateTimeOffset Since);

/// <summary>
/// Domains to thaw later, one small file each under STATE/thaw-pending/ (like the run journal: it must
/// outlive the process and the catalog). `recover` and the next backup of the domain look again.
/// </summary>
public sealed class ThawPending(string stateDirectory)
{
    private string Directory => Path.Combine(stateDirectory, "thaw-pending");

    private string FileOf(string uuid) => Path.Combine(Directory, $"{uuid}.json");

    public void Mark(PendingThaw pending)
    {
        System.IO.Directory.CreateDirectory(Directory);
        var temp = FileOf(pending.DomainUuid) + ".tmp";
        File.WriteAllText(temp, JsonSerializer.Serialize(pending));
        File.Move(temp, FileOf(pending.DomainUuid), overwrite: true);
    }

    public void Clear(string uuid) => File.Delete(FileOf(uuid));

    public PendingThaw? Find(string uuid)
    {
        var path = FileOf(uuid);
        if (!File.Exists(path)) return null;
        try { return JsonSerializer.Deserialize<PendingThaw>(File.ReadAllText(path)); }
        catch (JsonException) { return new PendingThaw(uuid, uuid, "?", File.GetLastWriteTimeUtc(path)); }
    }

    public IReadOnlyList<PendingThaw> All() =>
        System.IO.Directory.Exists(Directory)
            ? System.IO.Directory.GetFiles(Directory, "*.json").Select(f => Find(Path.GetFileNameWithoutExtension(f))!).ToList()
            : [];
}
