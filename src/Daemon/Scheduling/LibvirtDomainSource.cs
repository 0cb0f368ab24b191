using Backupd.Daemon.Libvirt;

namespace Backupd.Daemon.Scheduling;

/// <summary>Lists the domains of a hypervisor through backupd's libvirt binding (a short connection per fire).</summary>
public sealed class LibvirtDomainSource : IDomainSource
{
    public Task<IReadOnlyList<string>> ListDomainsAsync(string uri, CancellationToken ct) =>
        // libvirt calls block; keep them off the scheduler's threads.
        Task.Run<IReadOnlyList<string>>(() =>
        {
            using var hypervisor = LibvirtHypervisor.Open(uri);
            return hypervisor.ListDomains().Select(d => d.Name).ToList();
        }, ct);

    /// <summary>For `policy check`: the names, or null when libvirt cannot be reached (domains are then resolved at run time).</summary>
    public static IReadOnlyList<string>? TryList(string uri)
    {
        try
        {
            using var hypervisor = LibvirtHypervisor.Open(uri);
            return hypervisor.ListDomains().Select(d => d.Name).ToList();
        }
        catch (Exception e) when (e is LibvirtException or DllNotFoundException or EntryPointNotFoundException)
        {
            return null;
        }
    }
}
