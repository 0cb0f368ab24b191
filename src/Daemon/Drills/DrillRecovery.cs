using Backupd.Daemon.Libvirt;
using Backupd.Daemon.Workflow;
using Backupd.Storage.Catalog;
using Backupd.Storage.Repository;
using Microsoft.Extensions.Logging;

namespace Backupd.Daemon.Drills;

/// <summary>
/// `recover` for drills: a drill whose process died leaves a running throwaway domain and its overlays. Every journaled
/// drill whose process is gone is torn down, and so is any domain named backupd-drill-* that no live drill owns
/// (a journal lost with its state directory). A live drill is never touched.
/// </summary>
public sealed class DrillRecovery(IHypervisor hypervisor, DrillJournal journal, ILogger logger)
{
    public async Task<IReadOnlyList<RecoveryAction>> RecoverAsync(bool dryRun, CancellationToken ct)
    {
        var actions = new List<RecoveryAction>();
        foreach (var entry in journal.OpenEntries().Where(e => e.Kind == DrillJournalEntry.Instant && !ProcessIdentity.IsAliveHere(e.Pid, e.ProcessStart)))
        {
            if (dryRun) { actions.Add(new RecoveryAction(entry.DomainName, "-", entry.Directory, "resume the instant restore's block pull", false, null)); continue; }
            try { actions.Add(await new InstantRestore(hypervisor, journal, logger).ResumeAsync(entry, ct)); }
            catch (Exception e) when (e is DrillException or LibvirtException or RepositoryException or Images.QemuImgException)
            {
                actions.Add(new RecoveryAction(entry.DomainName, "-", entry.Directory, "resume the instant restore's block pull", false, e.Message));
            }
        }
        var runner = new DrillRunner(hypervisor, journal, logger);
        var live = new HashSet<string>(StringComparer.Ordinal);
        foreach (var entry in journal.OpenEntries().Where(e => e.Kind == DrillJournalEntry.Drill))
        {
            if (ProcessIdentity.IsAliveHere(entry.Pid, entry.ProcessStart)) { live.Add(entry.DomainName); continue; }
            var done = !dryRun && runner.TearDown(entry);
            if (done) DrillsLog.DrillLeftoverRemoved(logger, entry.DomainName, entry.Directory);
            actions.Add(new RecoveryAction(entry.DomainName, "-", entry.Directory, "remove the drill domain and its overlays", done, dryRun || done ? null : "could not remove everything (see the log)"));
            live.Add(entry.DomainName); // handled
        }
        foreach (var domain in hypervisor.ListDomains().Where(d => d.Name.StartsWith(DrillRunner.DomainPrefix, StringComparison.Ordinal) && !live.Contains(d.Name)))
        {
            try
            {
                if (DrillXml.Owner(hypervisor.GetXml(domain.Uuid, DomainXmlKind.Live)) is { } owner && ProcessIdentity.IsAliveHere(owner.Pid, owner.Start)) continue; // another backupd's live drill
            }
            catch (LibvirtException e) when (e.Code == LibvirtErrorCodes.NoDomain) { continue; }
            var done = false;
            if (!dryRun)
            {
                if (domain.IsActive) hypervisor.Destroy(domain.Uuid);
                if (domain.Persistent) hypervisor.Undefine(domain.Uuid);
                done = true;
                DrillsLog.DrillLeftoverRemoved(logger, domain.Name, "(not journaled)");
            }
            actions.Add(new RecoveryAction(domain.Name, "-", "-", "remove a drill domain no drill owns", done, null));
        }
        return actions;
    }
}
