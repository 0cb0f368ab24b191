using System.Diagnostics;
using Backupd.Daemon.Images;
using Backupd.Daemon.Libvirt;
using Backupd.Daemon.Restore;
using Backupd.Storage.Catalog;
using Backupd.Storage.Repository;
using Microsoft.Extensions.Logging;

namespace Backupd.Daemon.Drills;

/// <summary>What to drill: one restore point of one domain, and how.</summary>
public sealed record DrillRequest(
    Guid SourceUuid, string SourceName, string PointId, string Repository, string? SavedXml, IReadOnlyList<PlannedDisk> Plan,
    TimeSpan Timeout, string? Check, bool TrustSavedXml, string ScratchRoot);

/// <summary>How a drill went. <see cref="Rto"/>: from the start of the restore to the agent answering (or the check passing).</summary>
public sealed record DrillResult(
    string DrillId, string DrillDomain, string PointId, bool Passed, TimeSpan? Rto, string? Failure, string Backing,
    TimeSpan? StartedAfter, TimeSpan? AgentAnsweredAfter, bool Agent, string? Check, int? CheckExitCode, string? CheckOutput, bool LeftNothing);

/// <summary>
/// A restore drill (issue 11): the point restored into a throwaway, isolated, transient domain on qcow2 overlays
/// (<see cref="PointBacking"/>, <see cref="DrillXml"/>), booted, the guest agent waited for, the check command run in
/// the guest, the RTO measured, and everything torn down whatever happened (destroy, overlays deleted). Journaled
/// first, so `recover` removes what a killed drill left (<see cref="DrillRecovery"/>).
/// </summary>
public sealed class DrillRunner(IHypervisor hypervisor, DrillJournal journal, ILogger logger)
{
    public const string DomainPrefix = "backupd-drill-";
    private static readonly TimeSpan PingTimeout = TimeSpan.FromSeconds(2);

    public static string NewId() => $"{DateTime.UtcNow:yyyyMMddHHmmss}-{Guid.NewGuid():N}"[..21];

    public async Task<DrillResult> RunAsync(DrillRequest request, BackupRepository repository, Action<DrillJournalEntry>? journaled, CancellationToken ct)
    {
        if (request.SavedXml is null)
            throw new DrillException($"restore point {request.PointId} has no saved domain XML: there is nothing to boot");
        var id = NewId();
        var name = DomainPrefix + id;
        var directory = Path.Combine(request.ScratchRoot, name);
        var entry = new DrillJournalEntry
        {
            Id = id, Kind = DrillJournalEntry.Drill, SourceDomain = request.SourceName, SourceUuid = request.SourceUuid, PointId = request.PointId,
            Repository = request.Repository, DomainName = name, Directory = directory, Pid = ProcessIdentity.Current.Pid, ProcessStart = ProcessIdentity.Current.StartToken,
        };
        journal.Write(entry);
        journaled?.Invoke(entry);
        var clock = Stopwatch.StartNew();
        string? uuid = null;
        string backingKind = "-";
        TimeSpan? startedAfter = null, agentAfter = null;
        var agent = DrillXml.HasAgentChannel(request.SavedXml);
        GuestExecResult? check = null;
        string? failure = null;
        TimeSpan? rto = null;
        try
        {
            Workflow.BackupWorkflow.CreateOverlayDirectory(request.ScratchRoot);
            Workflow.BackupWorkflow.CreateOverlayDirectory(directory);
            using var backing = await PointBacking.PrepareAsync(repository, request.PointId, request.Plan, directory, "drill", allowMirror: true, null, ct);
            backingKind = backing.Kind;
            var emulator = request.TrustSavedXml ? null : DomainRestore.HostEmulator(hypervisor, request.SavedXml);
            var definition = DrillXml.Build(request.SavedXml, name, backing.Disks.ToDictionary(d => d.Disk, d => new RestoredDisk(d.Overlay, "qcow2")), directory, emulator, request.TrustSavedXml);
            uuid = hypervisor.StartTransient(definition.Xml);
            startedAfter = clock.Elapsed;
            DrillsLog.DrillStarted(logger, request.SourceName, request.PointId, name, backingKind);
            if (agent)
            {
                agentAfter = await WaitForAgentAsync(uuid, clock, request.Timeout, ct)
                    ?? throw new DrillException($"the guest agent did not answer within {request.Timeout.TotalSeconds:0} s of the drill's start (the guest did not boot, or its agent does not start)");
                rto = agentAfter;
                if (request.Check is { } command)
                {
                    var left = request.Timeout - clock.Elapsed;
                    check = await GuestExec.RunAsync(hypervisor, uuid, command, left > TimeSpan.Zero ? left : TimeSpan.FromSeconds(1), ct);
                    if (check.TimedOut) throw new DrillException($"the check command did not finish within the drill's timeout ({request.Timeout.TotalSeconds:0} s)");
                    if (check.ExitCode != 0) throw new DrillException($"the check command exited {(check.ExitCode is { } c ? c.ToString(System.Globalization.CultureInfo.InvariantCulture) : "by a signal")}: {check.Output.Trim()}");
                    rto = clock.Elapsed;
                }
            }
            else
            {
                // No agent to ask: the domain started, and every image it runs on is consistent and holds the point's bytes.
                if (request.Check is not null) throw new DrillException("a check command needs the guest agent, and the point's domain has no agent channel");
                foreach (var d in backing.Disks)
                {
                    if (await QemuImg.CheckAsync(d.Backing, d.BackingFormat, ct) is { } problem) throw new DrillException(problem);
                    var key = request.Plan.First(p => p.Disk == d.Disk).Top.FileKey;
                    if (!d.FromMirror && !await repository.MatchesAsync(request.PointId, key, d.Backing, null, ct))
                        throw new DrillException($"disk {d.Disk}: the reconstructed image does not match the point's digest");
                }
                if (hypervisor.FindDomain(uuid) is not { State: DomainRunState.Running })
                    throw new DrillException($"{name} is not running any more after its start");
                rto = clock.Elapsed;
            }
        }
        catch (Exception e) when (e is DrillException or LibvirtException or QemuImgException or RepositoryException or RestoreException or IOException)
        {
            failure = e.Message;
        }
        finally
        {
            if (uuid is not null)
            {
                try { hypervisor.Destroy(uuid); }
                catch (LibvirtException e) when (e.Code == LibvirtErrorCodes.NoDomain) { }
                catch (LibvirtException e) { DrillsLog.DrillTeardownFailed(logger, "the domain", name, e); }
            }
        }
        var leftNothing = TearDown(entry);
        if (failure is null) DrillsLog.DrillPassed(logger, request.SourceName, request.PointId, rto!.Value.TotalSeconds);
        else DrillsLog.DrillFailed(logger, request.SourceName, request.PointId, failure);
        return new DrillResult(id, name, request.PointId, failure is null, failure is null ? rto : null, failure, backingKind, startedAfter, agentAfter, agent,
            request.Check, check?.ExitCode, check?.Output, leftNothing);
    }

    /// <summary>Pings until the agent answers: the time on <paramref name="clock"/> then, or null when <paramref name="timeout"/> passed first.</summary>
    internal async Task<TimeSpan?> WaitForAgentAsync(string uuid, Stopwatch clock, TimeSpan timeout, CancellationToken ct)
    {
        try { hypervisor.SetAgentResponseTimeout(uuid, PingTimeout); }
        catch (LibvirtException) { /* the ping's own timeout still bounds it */ }
        while (clock.Elapsed < timeout)
        {
            ct.ThrowIfCancellationRequested();
            if (hypervisor.PingAgent(uuid, PingTimeout)) return clock.Elapsed;
            if (hypervisor.FindDomain(uuid) is not { IsActive: true }) throw new DrillException("the domain stopped before its guest agent answered");
            await Task.Delay(200, ct);
        }
        return null;
    }

    /// <summary>Removes the drill's domain (if any is left) and directory, then its journal entry; true when nothing is left.</summary>
    public bool TearDown(DrillJournalEntry entry)
    {
        var clean = true;
        try
        {
            if (hypervisor.FindDomain(entry.DomainName) is { } left)
            {
                if (left.IsActive) hypervisor.Destroy(left.Uuid);
                if (left.Persistent) hypervisor.Undefine(left.Uuid);
            }
        }
        catch (LibvirtException e) when (e.Code == LibvirtErrorCodes.NoDomain) { }
        catch (LibvirtException e) { DrillsLog.DrillTeardownFailed(logger, "the domain", entry.DomainName, e); clean = false; }
        try
        {
            if (Directory.Exists(entry.Directory)) Directory.Delete(entry.Directory, recursive: true);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException) { DrillsLog.DrillTeardownFailed(logger, entry.Directory, entry.DomainName, e); clean = false; }
        if (clean) journal.Remove(entry);
        return clean;
    }
}
