using Backupd.Daemon.Libvirt;

namespace Backupd.Daemon.Chains;

/// <summary>
/// Which domains use which image files: every defined domain's persistent XML and every running domain's live XML.
/// A live disk lists its whole chain (backingStore); a persistent definition usually names only the active image,
/// so its chain below comes from qemu-img. Paths are compared resolved (realpath).
/// </summary>
public sealed class ImageUsage
{
    private readonly Dictionary<string, List<ImageUser>> users = new(StringComparer.Ordinal);

    public static async Task<ImageUsage> ScanAsync(IHypervisor hypervisor, CancellationToken ct)
    {
        var usage = new ImageUsage();
        var chains = new Dictionary<string, IReadOnlyList<ChainLayer>>(StringComparer.Ordinal); // one qemu-img call per image
        foreach (var domain in hypervisor.ListDomains())
        {
            ct.ThrowIfCancellationRequested();
            try
            {
                if (domain.IsActive)
                {
                    foreach (var d in DomainXml.ParseDisks(hypervisor.GetXml(domain.Uuid, DomainXmlKind.Live)))
                    {
                        if (d.SourcePath is null) continue;
                        usage.Add(d.SourcePath, new ImageUser(domain.Name, domain.Uuid, "live", d.Target));
                        foreach (var b in d.BackingChain.Where(b => b.Path is not null))
                            usage.Add(b.Path!, new ImageUser(domain.Name, domain.Uuid, "live", d.Target));
                    }
                }
                if (!domain.Persistent) continue;
                foreach (var d in DomainXml.ParseDisks(hypervisor.GetXml(domain.Uuid, DomainXmlKind.Persistent)))
                {
                    if (d.SourcePath is null || d.Type != "file" && d.Type != "block") continue;
                    var user = new ImageUser(domain.Name, domain.Uuid, "persistent", d.Target);
                    if (!chains.TryGetValue(d.SourcePath, out var chain))
                    {
                        try { chain = File.Exists(d.SourcePath) ? await ImageChainReader.ReadAsync(d.SourcePath, ct) : []; }
                        catch (Exception e) when (e is IOException or System.Text.Json.JsonException) { chain = []; } // unreadable: at least its source counts
                        chains[d.SourcePath] = chain;
                    }
                    usage.Add(d.SourcePath, user);
                    foreach (var layer in chain) usage.Add(layer.Path, user);
                }
            }
            catch (LibvirtException e) when (e.Code == LibvirtErrorCodes.NoDomain)
            {
                // undefined since the listing
            }
        }
        return usage;
    }

    private void Add(string path, ImageUser user)
    {
        var key = RealPath.Of(path);
        if (!users.TryGetValue(key, out var list)) users[key] = list = [];
        if (!list.Contains(user)) list.Add(user);
    }

    /// <summary>Every use of the file, by any domain and definition.</summary>
    public IReadOnlyList<ImageUser> UsersOf(string path) => users.TryGetValue(RealPath.Of(path), out var list) ? list : [];

    /// <summary>Uses by domains other than <paramref name="uuid"/>.</summary>
    public IReadOnlyList<ImageUser> OthersOf(string path, string uuid) =>
        [.. UsersOf(path).Where(u => !string.Equals(u.Uuid, uuid, StringComparison.OrdinalIgnoreCase))];

    /// <summary>True when any definition of any domain (this one included) still names the file.</summary>
    public bool IsReferenced(string path) => UsersOf(path).Count > 0;
}
