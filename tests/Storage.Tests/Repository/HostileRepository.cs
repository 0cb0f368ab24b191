using System.Security.Cryptography;
using System.Text.Json.Nodes;
using Backupd.Storage.Repository;

namespace Backupd.Storage.Tests.Repository;

/// <summary>What the hostile-repository tests share: a directory outside the repository to watch, and ways to plant things.</summary>
internal sealed class HostileRepository : IDisposable
{
    public HostileRepository()
    {
        T = new TempRepository();
        Outside = T.Path_("outside");
        Directory.CreateDirectory(Path.Combine(Outside, "secret"));
        File.WriteAllText(Path.Combine(Outside, "secret", "mirror"), "the secret bytes");
        File.WriteAllText(Path.Combine(Outside, "victim.img"), "a victim image");
        Before = Snapshot(Outside);
    }

    public TempRepository T { get; }
    public string Outside { get; }
    public IReadOnlyList<string> Before { get; }

    public string Group(string g) => Path.Combine(T.RepoDir, "groups", g);
    public string PointFile(string g, string pointId) => Path.Combine(Group(g), "points", pointId + ".json");
    public string FileDir(string g, string key) => Path.Combine(Group(g), "files", key);

    /// <summary>Rewrites a point document with a valid MAC, as someone who can read the repository key could.</summary>
    public void Forge(RestorePointInfo point, Func<PointDocument, PointDocument> edit)
    {
        var doc = T.Repo.ReadPoint(point.GroupId, point.PointId);
        T.Repo.Documents.Write(PointFile(point.GroupId, point.PointId), edit(doc));
    }

    /// <summary>Edits a document's JSON in place, leaving its MAC as it was (someone without the key).</summary>
    public static void EditJson(string path, Action<JsonObject> edit)
    {
        var node = JsonNode.Parse(File.ReadAllText(path))!.AsObject();
        edit(node);
        File.WriteAllText(path, node.ToJsonString(new System.Text.Json.JsonSerializerOptions { WriteIndented = true }));
    }

    /// <summary>Fails unless nothing outside the repository changed (names, kinds, sizes and contents).</summary>
    public void AssertOutsideUntouched() => Assert.Equal(Before, Snapshot(Outside));

    /// <summary>Every entry below a directory, links not followed: "path kind size hash".</summary>
    public static List<string> Snapshot(string dir)
    {
        var lines = new List<string>();
        foreach (var e in new DirectoryInfo(dir).EnumerateFileSystemInfos("*", new EnumerationOptions { RecurseSubdirectories = true, AttributesToSkip = 0, ReturnSpecialDirectories = false }))
        {
            var rel = Path.GetRelativePath(dir, e.FullName);
            lines.Add(e switch
            {
                _ when e.LinkTarget is not null => $"{rel} link {e.LinkTarget}",
                FileInfo f => $"{rel} file {f.Length} {Convert.ToHexString(SHA256.HashData(File.ReadAllBytes(f.FullName)))}",
                _ => $"{rel} dir",
            });
        }
        lines.Sort(StringComparer.Ordinal);
        return lines;
    }

    public void Dispose() => T.Dispose();
}
