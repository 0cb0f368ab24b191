namespace Backupd.Storage.Repository;

/// <summary>Every path of the on-disk layout, in one place (docs/repository-format.md).</summary>
internal sealed class RepositoryLayout(string root)
{
    public string Root => root;
    public string Document => Path.Combine(root, "repository.json");
    public string KeyFile => Path.Combine(root, "key");
    public string Groups => Path.Combine(root, "groups");
    public string Group(string g) => Path.Combine(Groups, g);
    public string GroupDocument(string g) => Path.Combine(Group(g), "group.json");
    public string Journal(string g) => Path.Combine(Group(g), "journal.json");
    public string Points(string g) => Path.Combine(Group(g), "points");
    public string Point(string g, string p) => Path.Combine(Points(g), p + ".json");
    public string Pins(string g) => Path.Combine(Group(g), "pins");
    public string Pin(string g, string pinId) => Path.Combine(Pins(g), pinId + ".json");
    public string Files(string g) => Path.Combine(Group(g), "files");
    public string File(string g, string k) => Path.Combine(Files(g), k);
    public string Mirror(string g, string k) => Path.Combine(File(g, k), "mirror");
    public string Signature(string g, string k) => Path.Combine(File(g, k), "signature");
    public string PendingSignature(string g, string k, string p) => Path.Combine(File(g, k), $"signature.{p}.new");
    public string UndoDirectory(string g, string k) => Path.Combine(File(g, k), "undo");
    public string Undo(string g, string k, string versionId) => Path.Combine(UndoDirectory(g, k), versionId + ".undo");
    public string MergedUndo(string g, string k, string versionId) => Undo(g, k, versionId) + ".merged";
}
