using Backupd.Daemon.Images;
using System.Diagnostics;
using System.Security;
using Backupd.Daemon.Libvirt;
using Backupd.Daemon.Workflow;
using Microsoft.Extensions.Logging;

namespace Backupd.Daemon.Chains;

public sealed record MoveOptions(string Destination, string Format, bool Shallow, long? Bandwidth, bool KeepSource);

public sealed record MoveResult(string Domain, string Target, bool Live, string From, string To, string Format, bool Shallow,
    double Seconds, IReadOnlyList<string> Deleted, IReadOnlyList<string> Kept);

/// <summary>
/// Moves one disk's storage: live with virDomainBlockCopy (mirror until READY, pivot, confirm in the live XML), or
/// offline with qemu-img convert; then the persistent definition, then the old files (unless --keep-source, and never
/// one another definition still names). Interrupted before the pivot, recovery aborts the copy and removes the
/// partial destination: the VM stays on its source.
/// </summary>
public sealed class DiskMover(IHypervisor hypervisor, ChainJournal journal, ILogger logger)
{
    private readonly ChainFinisher finisher = new(hypervisor, logger);

    public static void Validate(DiskChain chain, MoveOptions options)
    {
        if (options.Format is not ("qcow2" or "raw"))
            throw new ChainRefusedException($"--format must be qcow2 or raw, got '{options.Format}'", FailureKind.Usage);
        if (options.Shallow && options.Format == "raw")
            throw new ChainRefusedException("--shallow keeps the backing chain under the copy, which a raw image cannot have: use --format qcow2", FailureKind.Usage);
        if (options.Shallow && chain.Depth < 2)
            throw new ChainRefusedException($"disk {chain.Target} has no backing file: --shallow would copy the same as a full copy; leave it out", FailureKind.Usage);
        if (File.Exists(options.Destination) || Directory.Exists(options.Destination))
            throw new ChainRefusedException($"'{options.Destination}' exists: move-disk writes a new file and never overwrites one", FailureKind.Usage);
        var dir = Path.GetDirectoryName(Path.GetFullPath(options.Destination));
        if (dir is null || !Directory.Exists(dir))
            throw new ChainRefusedException($"the directory of '{options.Destination}' does not exist", FailureKind.Usage);
        if (chain.Layers.Any(l => l.Missing))
            throw new ChainRefusedException($"disk {chain.Target} has a missing backing file; nothing can be copied", FailureKind.Failed);
    }

    public async Task<MoveResult> RunAsync(DomainInfo domain, DomainDisk disk, DiskChain chain, MoveOptions options, Action<ChainProgress>? progress, CancellationToken ct)
    {
        Validate(chain, options);
        var clock = Stopwatch.StartNew();
        var destination = Path.GetFullPath(options.Destination);
        var entry = ChainJournalEntry.Begin("move-disk", domain, disk, chain, destination, options.Format) with
        {
            DiskType = "file",
            DestinationCreated = true,
            // A full copy leaves the whole old chain unused by this domain; a shallow one only the old active layer.
            DeleteAfter = options.KeepSource ? [] : options.Shallow ? [chain.Layers[0].Path] : [.. chain.Layers.Select(l => l.Path)],
        };
        ChainsLog.Planned(logger, "move-disk", domain.Name, disk.Target, $"{chain.Layers[0].Path} -> {destination} ({options.Format}{(options.Shallow ? ", shallow" : "")})");
        journal.Write(entry);
        Faults.Hit(Faults.MoveAfterJournal);
        try
        {
            if (entry.Live) await CopyLiveAsync(entry, options, progress, ct);
            else await CopyOfflineAsync(entry, chain, options, progress, ct);
            journal.Step(entry, ChainStep.JobDone);
            Faults.Hit(Faults.MoveAfterPivot);
            finisher.Redefine(entry);
            journal.Step(entry, ChainStep.DefinitionUpdated);
            var (deleted, kept) = await finisher.DeleteUnreferencedAsync(entry, CancellationToken.None);
            journal.Close(entry);
            return new MoveResult(domain.Name, disk.Target, entry.Live, chain.Layers[0].Path, destination, options.Format, options.Shallow,
                clock.Elapsed.TotalSeconds, deleted, options.KeepSource ? [.. chain.Layers.Select(l => l.Path)] : kept);
        }
        catch (Exception e) when (e is not InjectedFaultException)
        {
            entry.Error = e.Message;
            if (entry.Step < ChainStep.JobDone)
            {
                // Not pivoted: back to the source, and the partial copy goes.
                if (entry.Live) await BlockJobRunner.AbortAsync(hypervisor, entry.DomainUuid, entry.Target);
                if (entry.Live && BlockJobRunner.LiveSource(hypervisor, entry.DomainUuid, entry.Target) is { } s && RealPath.Of(s) == RealPath.Of(destination))
                    journal.Write(entry); // pivoted after all: recovery finishes it
                else
                {
                    File.Delete(destination);
                    journal.Close(entry);
                }
            }
            else journal.Write(entry);
            ChainsLog.Failed(logger, e, entry.Id, entry.DomainName);
            throw;
        }
    }

    private async Task CopyLiveAsync(ChainJournalEntry entry, MoveOptions options, Action<ChainProgress>? progress, CancellationToken ct)
    {
        if (hypervisor.GetBlockJob(entry.DomainUuid, entry.Target) is { } other)
            throw new ChainRefusedException($"disk {entry.Target} already has a {other.Type} block job; nothing was done", FailureKind.Busy);
        // libvirt creates the destination (for a shallow copy on top of the source's backing file).
        var xml = $"<disk type='file'><source file='{SecurityElement.Escape(entry.FinalActive)}'/><driver type='{options.Format}'/></disk>";
        hypervisor.StartCopy(entry.DomainUuid, entry.Target, xml, options.Shallow, reuseExternal: false, options.Bandwidth);
        journal.Step(entry, ChainStep.JobStarted);
        ChainsLog.JobStarted(logger, entry.DomainName, entry.Target, "copy");
        Faults.Hit(Faults.MoveMidCopy);
        var ready = await BlockJobRunner.WaitAsync(hypervisor, entry.DomainUuid, entry.Target, BlockJobGoal.Ready, "copy", progress, ct);
        if (ready != BlockJobOutcome.Ready) throw new IOException($"the copy of {entry.Target} did not become ready: {ready}");
        journal.Step(entry, ChainStep.PivotRequested);
        if (!await BlockJobRunner.PivotAsync(hypervisor, entry.DomainUuid, entry.Target, entry.FinalActive))
            throw new IOException($"the pivot of {entry.Target} onto '{entry.FinalActive}' is not confirmed in the live XML: run `backupd recover`");
    }

    private static async Task CopyOfflineAsync(ChainJournalEntry entry, DiskChain chain, MoveOptions options, Action<ChainProgress>? progress, CancellationToken ct)
    {
        progress?.Invoke(new ChainProgress("qemu-img convert", 0, 1));
        var top = chain.Layers[0];
        await QemuImg.ConvertAsync(top.Path, top.Format ?? "qcow2", entry.FinalActive, options.Format,
            options.Shallow ? (chain.Layers[1].Path, chain.Layers[1].Format ?? "qcow2") : null, ct);
    }
}
