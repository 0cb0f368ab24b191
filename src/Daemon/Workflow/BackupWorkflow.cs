using System.Diagnostics;
using Backupd.Daemon.GuestAgent;
using Backupd.Daemon.Libvirt;
using Backupd.Policies.Model;
using Microsoft.Extensions.Logging;

namespace Backupd.Daemon.Workflow;

/// <summary>
/// The live backup of one domain:
/// <list type="number">
/// <item>preflight: everything that can refuse the request, before the domain is touched;</item>
/// <item>checkpoint NEW (changed-block tracking, journaled first), then one atomic disk-only snapshot onto temporary overlays;</item>
/// <item>copy of every file of each disk's frozen chain into the backup target (only the changed blocks where the last good checkpoint allows);</item>
/// <item>in a finally, without cancellation: active commit, pivot, confirm, delete the overlays; then rotate the checkpoints (or discard NEW).</item>
/// </list>
/// A shut-off domain skips the snapshot, NEW and 4: its files are copied as they rest.
/// </summary>
public sealed class BackupWorkflow(IHypervisor hypervisor, IImageTool images, IBackupTarget target, WorkflowOptions options, ILogger logger)
{
    private readonly RunJournal journal = new(options.StateDirectory);
    private readonly OverlayMerger merger = new(hypervisor, images, options, logger);
    private readonly AgentGuard agent = new(hypervisor, options.AgentTimeout, logger);
    private readonly CheckpointSteps checkpoints = new(hypervisor, logger);

    /// <summary>Called synchronously on the copying thread.</summary>
    public Action<BackupProgress>? OnProgress { get; init; }

    /// <summary>Each disk's active-commit position while the overlays are merged back (the merger reads it between waits).</summary>
    public Action<CommitProgress>? OnCommitProgress { get => merger.OnProgress; init => merger.OnProgress = value; }

    /// <summary>Called once before the overlays are merged back (success or not), so a run that dies in the commit says so.</summary>
    public Action? OnCommitStarting { get; init; }

    /// <summary>Changed-block reads; null: every file is read in full (the reason says so).</summary>
    public IChangedBlockPlanner? Planner { get; init; }

    /// <summary>Throws <see cref="BackupRefusedException"/> when preflight refuses (nothing was touched).</summary>
    public async Task<BackupResult> RunAsync(BackupRequest request, CancellationToken ct)
    {
        var started = DateTimeOffset.UtcNow;
        var domain = hypervisor.FindDomain(request.Domain)
            ?? throw new BackupRefusedException(RefusalKind.DomainNotFound, $"domain '{request.Domain}' does not exist");
        using var domainLock = HostRunLock.Acquire(options.StateDirectory, domain.Uuid, domain.Name);
        var plan = await PreflightAsync(domain, request, started, ct);
        // The repository's writer lock before the snapshot: a restore or verify of the group delays the run (bounded)
        // or refuses it with nothing done (Busy), never fails it midway with the guest on an overlay.
        using var session = target.Begin(plan.Domain.Uuid, plan.Domain.Name, ct);
        return domain.IsActive ? await RunLiveAsync(plan, session, ct) : await RunShutOffAsync(plan, session, ct);
    }

    // ---------------------------------------------------------------- 1. preflight

    /// <summary><paramref name="Sizes"/>: libvirt's sizes of the active image before the snapshot (afterwards they describe the overlay).</summary>
    private sealed record DiskPlan(DomainDisk Disk, IReadOnlyList<ChainImage> Chain, JournalDisk Journal, BlockSizes Sizes);

    private sealed record Plan(
        string RunId, DomainInfo Domain, DateTimeOffset StartedAt, string DefinitionXml, string SnapshotXml,
        IReadOnlyList<DiskPlan> Disks, IReadOnlyList<SkippedDisk> Skipped, QuiesceMode Quiesce, string? AgentProblem, double? AgentWaitSeconds)
    {
        /// <summary>Every disk of the definition (a checkpoint must list them all), selected or not.</summary>
        public IReadOnlyList<DomainDisk> AllDisks { get; init; } = [];
        public ReadRequest Read { get; init; } = new();
        public IReadOnlyList<(DomainDisk Disk, IReadOnlyList<ChainImage> Chain)> Selected => [.. Disks.Select(d => (d.Disk, d.Chain))];
    }

    private async Task<Plan> PreflightAsync(DomainInfo domain, BackupRequest request, DateTimeOffset started, CancellationToken ct)
    {
        var runId = OverlayNaming.NewRunId(started);
        var liveXml = hypervisor.GetXml(domain.Uuid, DomainXmlKind.Live);
        var persistentXml = domain.Persistent ? hypervisor.GetXml(domain.Uuid, DomainXmlKind.Persistent) : null;
        var disks = DomainXml.ParseDisks(domain.IsActive ? liveXml : persistentXml ?? liveXml);

        RefuseLeftovers(domain, liveXml, persistentXml);
        var selection = DiskSelection.Select(disks, request.IncludeDisks, request.ExcludeDisks);
        foreach (var skipped in selection.Skipped)
            logger.DiskSkipped(domain.Name, skipped.Target, skipped.Reason);

        if (domain.IsActive)
        {
            foreach (var disk in selection.Selected)
            {
                var job = hypervisor.GetBlockJob(domain.Uuid, disk.Target);
                if (job is not null)
                    throw new BackupRefusedException(RefusalKind.Busy, $"disk '{disk.Target}' of '{domain.Name}' already has a {job.Type} block job; try again when it is finished");
            }
        }

        var plans = new List<DiskPlan>();
        foreach (var disk in selection.Selected)
        {
            IReadOnlyList<ChainImage> chain;
            try { chain = await images.GetChainAsync(disk.SourcePath!, ct); }
            catch (IOException e)
            {
                throw new BackupRefusedException(RefusalKind.BadRequest, $"disk '{disk.Target}': cannot read the image chain of '{disk.SourcePath}': {e.Message}");
            }
            BlockSizes sizes;
            try { sizes = hypervisor.GetBlockSizes(domain.Uuid, disk.Target); }
            catch (LibvirtException e)
            {
                throw new BackupRefusedException(RefusalKind.BadRequest, $"disk '{disk.Target}': libvirt cannot report the size of '{disk.SourcePath}' ({e.LibvirtMessage}), so a complete copy could not be checked");
            }
            var diskBase = new DiskBase(disk.Type, disk.SourcePath!, disk.Format ?? chain[0].Format);
            var overlay = OverlayNaming.OverlayPath(disk.SourcePath!, disk.Type, runId, domain.Uuid, disk.Target, options.ScratchDirectory, options.StateDirectory);
            plans.Add(new DiskPlan(disk, chain, new JournalDisk(disk.Target, diskBase, overlay), sizes));
        }

        target.EnsureWritable();

        var snapshotXml = "";
        string? agentProblem = null;
        double? agentWait = null;
        if (domain.IsActive)
        {
            CheckOverlayLocations(plans);
            snapshotXml = SnapshotXml.Build(runId, disks, plans.ToDictionary(p => p.Disk.Target, p => p.Journal.OverlayPath));
            if (request.Quiesce != QuiesceMode.Off)
            {
                var clock = Stopwatch.StartNew();
                agentProblem = AgentProblem(domain, liveXml);
                agentWait = Math.Round(clock.Elapsed.TotalSeconds, 1);
            }
            if (request.Quiesce == QuiesceMode.Required && agentProblem is not null)
                throw new BackupRefusedException(RefusalKind.QuiesceUnavailable,
                    $"quiesce 'required' but {agentProblem}; nothing was snapshotted; use --quiesce preferred or off, or start (or wake) qemu-guest-agent in the guest");
        }

        return new Plan(runId, domain, started, persistentXml ?? liveXml, snapshotXml, plans, selection.Skipped, request.Quiesce, agentProblem, agentWait)
        {
            AllDisks = disks,
            Read = request.Read,
        };
    }

    /// <summary>
    /// Null when the agent can quiesce now. A connected channel is not enough (a hung qemu-ga keeps it
    /// open), so it must answer a guest-ping, bounded like every later agent call of the run.
    /// </summary>
    private const string NoAgentChannel = "no guest agent channel";

    private string? AgentProblem(DomainInfo domain, string liveXml)
    {
        if (!DomainXml.AgentConnected(liveXml))
            return $"'{domain.Name}' has {(DomainXml.HasAgentChannel(liveXml) ? "a guest agent channel that is not connected" : NoAgentChannel)}";
        // A thaw left pending by an earlier run: settle it first (the guest may be frozen right now).
        var pending = new ThawPending(options.StateDirectory);
        if (pending.Find(domain.Uuid) is not null && agent.EnsureThawed(domain.Uuid, domain.Name, TimeSpan.Zero).State != ThawState.Unconfirmed)
            pending.Clear(domain.Uuid);
        return agent.Probe(domain.Uuid, domain.Name) is { } reason ? $"on '{domain.Name}' {reason}" : null;
    }

    /// <summary>A disk already on one of our overlays, or an unfinished run in the journal: recovery must run first.</summary>
    private void RefuseLeftovers(DomainInfo domain, string liveXml, string? persistentXml)
    {
        foreach (var xml in new[] { liveXml, persistentXml })
        {
            if (xml is null) continue;
            foreach (var disk in DomainXml.ParseDisks(xml))
            {
                var overlay = new[] { disk.SourcePath }.Concat(disk.BackingChain.Select(b => b.Path)).FirstOrDefault(OverlayNaming.IsOverlay);
                if (overlay is not null)
                    throw new BackupRefusedException(RefusalKind.NeedsRecovery,
                        $"disk '{disk.Target}' of '{domain.Name}' uses backupd overlay '{overlay}' left by run {OverlayNaming.RunIdOf(overlay)}; run 'backupd recover' first");
            }
        }
        // An instant restore of one of this domain's points whose pull did not finish still reads the mirror (issue 11).
        if (new Drills.DrillJournal(options.StateDirectory).OpenEntries().FirstOrDefault(e => e.Kind == Drills.DrillJournalEntry.Instant && e.SourceUuid.ToString() == domain.Uuid) is { } instant)
            throw new BackupRefusedException(RefusalKind.NeedsRecovery,
                $"instant restore '{instant.DomainName}' of point {instant.PointId} still reads '{domain.Name}''s repository images; run 'backupd recover' to finish its block pull first");
        var open = journal.OpenEntries().FirstOrDefault(e => e.DomainUuid == domain.Uuid);
        if (open is not null)
            throw new BackupRefusedException(RefusalKind.NeedsRecovery,
                $"run {open.RunId} of '{domain.Name}' did not finish (journal step {open.Step}); run 'backupd recover' first");
    }

    private void CheckOverlayLocations(IReadOnlyList<DiskPlan> plans)
    {
        foreach (var dir in plans.Select(p => Path.GetDirectoryName(p.Journal.OverlayPath)!).Distinct())
        {
            // Our own default for block devices is created on demand; a configured scratch directory must exist.
            // QEMU (not root) opens the overlay by its path: the directory must be searchable whatever the umask
            // (the unit's UMask=0077 made it 0700), yet not listable.
            if (options.ScratchDirectory is null && dir == Path.Combine(options.StateDirectory, "overlays")) CreateOverlayDirectory(dir);
            if (!Directory.Exists(dir))
                throw new BackupRefusedException(RefusalKind.BadRequest, $"overlay directory '{dir}' does not exist");
            var free = new DriveInfo(dir).AvailableFreeSpace;
            if (free < options.MinimumOverlayFreeBytes)
                throw new BackupRefusedException(RefusalKind.InsufficientSpace,
                    $"overlay directory '{dir}' has {free >> 20} MiB free, less than the {options.MinimumOverlayFreeBytes >> 20} MiB required for guest writes during the backup");
        }
        foreach (var p in plans)
        {
            if (File.Exists(p.Journal.OverlayPath))
                throw new BackupRefusedException(RefusalKind.NeedsRecovery, $"overlay file '{p.Journal.OverlayPath}' already exists");
        }
    }

    /// <summary>A directory QEMU's user can pass through (0711 whatever the umask): overlays, drills, instant restores.</summary>
    internal static void CreateOverlayDirectory(string dir)
    {
        const UnixFileMode searchable = UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute | UnixFileMode.GroupExecute | UnixFileMode.OtherExecute;
        if (OperatingSystem.IsWindows())
        {
            Directory.CreateDirectory(dir);
            return;
        }
        Directory.CreateDirectory(dir, searchable);
        File.SetUnixFileMode(dir, searchable); // CreateDirectory's mode is filtered by the umask
    }

    // ---------------------------------------------------------------- 2-4. running domain

    private async Task<BackupResult> RunLiveAsync(Plan plan, IBackupSession session, CancellationToken ct)
    {
        var entry = new JournalEntry
        {
            RunId = plan.RunId,
            DomainUuid = plan.Domain.Uuid,
            DomainName = plan.Domain.Name,
            Persistent = plan.Domain.Persistent,
            WasActive = true,
            Disks = plan.Disks.Select(d => d.Journal).ToList(),
            StartedAt = plan.StartedAt,
        };
        journal.Write(entry);

        Consistency? consistency = null;
        QuiesceReport? quiesce = null;
        Copy? copy = null;
        Exception? failure = null;
        var overlayClock = new Stopwatch();
        IReadOnlyDictionary<string, MergeOutcome> merges;
        var cbt = checkpoints.Decide(plan.Domain.Uuid, plan.RunId, live: true, plan.Selected, session.Previous, plan.Read);
        try
        {
            Faults.Hit(Faults.AfterJournal);
            cbt = options.ChangedBlockTracking ? CreateCheckpoint(plan, cbt, entry) : cbt with { NewName = null, NotCreatedReason = "changed-block tracking is off" };
            (consistency, quiesce) = TakeSnapshot(plan, entry);
            overlayClock.Start();
            entry.Step = RunStep.SnapshotCreated;
            journal.Write(entry);
            Faults.Hit(Faults.AfterSnapshot);

            var reads = await MapAsync(plan, cbt, session, entry, ct);
            entry.Step = RunStep.Copying;
            journal.Write(entry);
            copy = await CopyAsync(plan, session, checkStillShutOff: false, consistency.Value, cbt, reads, ct);
            entry.PointId = copy.Point.PointId;
            entry.Step = RunStep.Copied;
            journal.Write(entry);
            Faults.Hit(Faults.AfterCopy);
        }
        catch (OperationCanceledException e)
        {
            failure = new OperationCanceledException("canceled before the copy finished; the partial copy was discarded", e);
            entry.Error = failure.Message;
            logger.RunCanceled(plan.Domain.Name, plan.RunId);
        }
        catch (Exception e) when (e is not OutOfMemoryException)
        {
            failure = e is LibvirtException ? new InvalidOperationException(Hints.Explain(e), e) : e;
            entry.Error = failure.Message;
            logger.RunFailed(e, plan.Domain.Name, plan.RunId, failure.Message);
        }
        finally
        {
            // The guest comes first: whatever happened above, get every disk back on its base.
            merges = await MergeBackAsync(entry, overlayClock);
        }

        var leftOver = merges.Where(m => !m.Value.BackOnBase).ToList();
        if (leftOver.Count == 0)
        {
            FinishCheckpoints(plan, cbt, entry);
            journal.Close(entry);
        }
        else
        {
            logger.OverlayLeftBehind(
                plan.Domain.Name, plan.RunId, string.Join("; ", leftOver.Select(m => $"{m.Key}: {m.Value.Problem}")));
        }
        var outcome = leftOver.Count > 0 ? RunOutcome.NeedsAttention : failure is null ? RunOutcome.Succeeded : RunOutcome.Failed;
        return Result(plan, outcome, consistency, copy, merges, consistency is null ? null : overlayClock.Elapsed, failure, cbt)
            with { Quiesce = quiesce ?? lastQuiesce };
    }

    // ---------------------------------------------------------------- 2a. checkpoints (changed-block tracking)

    /// <summary>NEW before the snapshot, so the snapshot propagates its bitmap to the overlays and the commit merges it back (docs/workflow.md).</summary>
    private CheckpointChoice CreateCheckpoint(Plan plan, CheckpointChoice cbt, JournalEntry entry)
    {
        foreach (var d in cbt.Disks.Values.Where(d => d.FullReadReason is not null)) logger.DiskReadInFull(plan.Domain.Name, d.Target, d.FullReadReason!);
        var made = checkpoints.Create(cbt, plan.Domain.Uuid, plan.Domain.Name, plan.AllDisks, entry, journal);
        if (made.NewName is null) return made;
        entry.Step = RunStep.CheckpointCreated;
        journal.Write(entry);
        Faults.Hit(Faults.AfterCheckpoint);
        return made;
    }

    /// <summary>
    /// Every disk is on its base. With a durable point: delete our older checkpoints (the kept one covers every write since this
    /// point). Without: delete NEW, keep the last good one (its bitmap still covers everything since the previous point).
    /// </summary>
    private void FinishCheckpoints(Plan plan, CheckpointChoice cbt, JournalEntry entry)
    {
        if (entry.PointId is not null)
        {
            entry.Step = RunStep.Rotating;
            TryJournal(entry);
            Faults.Hit(Faults.BeforeRotation);
            checkpoints.Rotate(plan.Domain.Uuid, plan.Domain.Name, cbt.Keep);
        }
        else if (entry.CheckpointNew is { } name)
        {
            checkpoints.Delete(plan.Domain.Uuid, plan.Domain.Name, name);
        }
    }

    /// <summary>Set by <see cref="TakeSnapshot"/> before a failure propagates, so a failed run still reports its quiesce.</summary>
    private QuiesceReport? lastQuiesce;

    /// <summary>
    /// Quiesce per mode: preferred takes a crash-consistent snapshot at once when the agent did not answer
    /// the preflight ping, and falls back when the quiesced snapshot fails. After any quiesce failure the
    /// guest is thawed (a freeze libvirt gave up on can still run when the agent wakes).
    /// </summary>
    private (Consistency, QuiesceReport) TakeSnapshot(Plan plan, JournalEntry entry)
    {
        var requested = plan.Quiesce.ToString().ToLowerInvariant();
        if (plan.Quiesce == QuiesceMode.Off)
        {
            CreateSnapshot(plan, quiesce: false);
            return (Consistency.CrashConsistent, Journaled(entry, new QuiesceReport(requested, "crash-consistent")));
        }
        if (plan.AgentProblem is not null)
        {
            // Required was refused in preflight; this is preferred.
            Journaled(entry, new QuiesceReport(requested, "crash-consistent", plan.AgentProblem, AgentWaitSeconds: plan.AgentWaitSeconds));
            GuestAgentLog.NotQuiescing(logger, plan.AgentProblem.EndsWith(NoAgentChannel, StringComparison.Ordinal) ? LogLevel.Information : LogLevel.Warning,
                plan.Domain.Name, plan.AgentProblem);
            CreateSnapshot(plan, quiesce: false);
            return (Consistency.CrashConsistent, lastQuiesce!);
        }
        var clock = Stopwatch.StartNew();
        try
        {
            CreateSnapshot(plan, quiesce: true);
            return (Consistency.ApplicationConsistent, Journaled(entry, new QuiesceReport(requested, "quiesced", AgentWaitSeconds: plan.AgentWaitSeconds)));
        }
        catch (LibvirtException e)
        {
            var reason = $"quiesced snapshot failed after {clock.Elapsed.TotalSeconds:0.0} s: {e.LibvirtMessage}";
            var thaw = agent.EnsureThawed(plan.Domain.Uuid, plan.Domain.Name, options.ThawBudget);
            if (thaw.State == ThawState.Unconfirmed)
                new ThawPending(options.StateDirectory).Mark(new PendingThaw(plan.Domain.Uuid, plan.Domain.Name, plan.RunId, DateTimeOffset.UtcNow));
            var thawText = thaw.State switch
            {
                ThawState.NotFrozen => "not-frozen",
                ThawState.Thawed => "thawed",
                _ => $"unconfirmed: {thaw.Problem}",
            };
            var failed = plan.Quiesce == QuiesceMode.Required;
            Journaled(entry, new QuiesceReport(requested, failed ? "failed" : "crash-consistent", reason, thawText, plan.AgentWaitSeconds));
            if (failed) throw;
            logger.QuiesceFellBack(e, plan.Domain.Name, $"{reason}; guest file systems {thawText}");
        }
        CreateSnapshot(plan, quiesce: false);
        return (Consistency.CrashConsistent, lastQuiesce!);
    }

    private QuiesceReport Journaled(JournalEntry entry, QuiesceReport report)
    {
        lastQuiesce = report;
        entry.Quiesce = report.ToJson();
        journal.Write(entry);
        return report;
    }

    /// <summary>How often a snapshot is tried when QEMU's LUKS key set-up fails its CPU-time benchmark.</summary>
    internal const int LuksBenchmarkAttempts = 5;

    /// <summary>
    /// The atomic snapshot. For a LUKS overlay QEMU benchmarks PBKDF2 on thread CPU time, and on hosts with
    /// coarse CPU accounting (VMs, tick-based accounting) it now and then measures 0 ms and fails with
    /// "Unable to get accurate CPU usage" (seen in about 1 of 4 encrypted snapshots on a loaded 2-core VM).
    /// The atomic snapshot is then rolled back completely (disks on their base, the overlay file removed), so
    /// it is retried; only while no overlay file exists, so a retry can never hit or reuse a half-made one.
    /// </summary>
    private void CreateSnapshot(Plan plan, bool quiesce)
    {
        for (var attempt = 1; ; attempt++)
        {
            try
            {
                hypervisor.CreateDiskOnlySnapshot(plan.Domain.Uuid, plan.SnapshotXml, quiesce);
                return;
            }
            catch (LibvirtException e) when (attempt < LuksBenchmarkAttempts && IsLuksBenchmarkFailure(e)
                && !plan.Disks.Any(d => File.Exists(d.Journal.OverlayPath)))
            {
                logger.SnapshotLuksRetry(
                    plan.Domain.Name, attempt, e.LibvirtMessage);
            }
        }
    }

    internal static bool IsLuksBenchmarkFailure(LibvirtException e) =>
        e.LibvirtMessage.Contains("Unable to get accurate CPU usage", StringComparison.Ordinal);

    // ---------------------------------------------------------------- 3a. dirty map of the frozen bases (changed-block tracking)

    /// <summary>Per disk: the read the copy asks for (null: full), or why a disk the checkpoint tracks is read in full.</summary>
    private sealed record DiskRead(Storage.ChangedBlocks.ChangedBlockRead? Read, string? FullReadReason);

    /// <summary>
    /// For each disk whose last good checkpoint may be trusted, the planner reads its bitmap on the frozen base (the VM writes to
    /// the overlay meanwhile). The export's pid is journaled while it runs; it is stopped before the copy, and again before the
    /// commit should a run die in between (<see cref="MergeBackAsync"/>, recovery).
    /// </summary>
    private async Task<IReadOnlyDictionary<string, DiskRead>> MapAsync(Plan plan, CheckpointChoice cbt, IBackupSession session, JournalEntry entry, CancellationToken ct)
    {
        var reads = new Dictionary<string, DiskRead>();
        foreach (var disk in plan.Disks)
        {
            var choice = cbt.Disks[disk.Disk.Target];
            if (!choice.CanUseBitmap) continue;
            var previous = session.Previous?.Files.FirstOrDefault(f => f.FileKey == $"{disk.Disk.Target}.0");
            if (Planner is null || previous is not { BlockSize: > 0 })
            {
                reads[disk.Disk.Target] = new DiskRead(null, Planner is null ? "no changed-block planner in this process" : "the previous version's block size is unknown");
                continue;
            }
            entry.Step = RunStep.Mapping;
            journal.Write(entry);
            var planned = await Planner.PlanAsync(disk.Chain[0].Path, choice.LastGood!, previous.BlockSize, pid =>
            {
                entry.ExportPid = pid;
                journal.Write(entry);
                Faults.Hit(Faults.MidMap);
            }, ct);
            entry.ExportPid = null;
            journal.Write(entry);
            reads[disk.Disk.Target] = planned.Plan is { } readPlan
                ? new DiskRead(new Storage.ChangedBlocks.ChangedBlockRead(readPlan, choice.SafetyNet, choice.BasedOnVersionId!), null)
                : new DiskRead(null, planned.FullReadReason ?? "the planner made no plan");
            if (planned.Plan is null) logger.DiskReadInFull(plan.Domain.Name, disk.Disk.Target, reads[disk.Disk.Target].FullReadReason!);
        }
        return reads;
    }

    // ---------------------------------------------------------------- 3. copy

    private sealed record Copy(Storage.Repository.RestorePointInfo Point, IReadOnlyDictionary<string, (List<CopiedFile> Files, TimeSpan Elapsed)> PerDisk, TimeSpan Elapsed);

    /// <summary>Copies into the session taken before the snapshot; a failure leaves it uncommitted (rolled back when the run disposes it).</summary>
    private async Task<Copy> CopyAsync(Plan plan, IBackupSession session, bool checkStillShutOff, Consistency consistency, CheckpointChoice cbt,
        IReadOnlyDictionary<string, DiskRead> reads, CancellationToken ct)
    {
        var clock = Stopwatch.StartNew();
        var total = plan.Disks.Sum(d => d.Chain.Sum(c => FileLength(c.Path)));
        long doneBefore = 0;
        var perDisk = new Dictionary<string, (List<CopiedFile>, TimeSpan)>();
        session.AttachMetadata("domain.xml", plan.DefinitionXml);
        session.AttachMetadata("consistency", System.Text.Json.JsonNamingPolicy.KebabCaseLower.ConvertName(consistency.ToString())); // for `catalog rebuild`
        foreach (var disk in plan.Disks)
        {
            var diskClock = Stopwatch.StartNew();
            var files = new List<CopiedFile>();
            var storedSizes = new List<long>();
            for (var depth = 0; depth < disk.Chain.Count; depth++)
            {
                var image = disk.Chain[depth];
                var key = $"{disk.Disk.Target}.{depth}";
                var progress = new CopyProgress(key, doneBefore, total, OnProgress);
                var read = depth == 0 ? reads.GetValueOrDefault(disk.Disk.Target) : null;
                var stored = await session.AddFileAsync(key, image, progress, read?.Read, ct);
                doneBefore += stored.BytesRead;
                storedSizes.Add(stored.FileSize);
                files.Add(new CopiedFile(key, image.Path, image.Format, image.VirtualSize, stored.BytesRead, stored.BytesWritten, stored.Digest, stored.Elapsed)
                {
                    ScrubbedBlocks = stored.ScrubbedBlocks,
                    HealedBlocks = stored.HealedBlocks,
                    Healing = stored.Healing,
                    ReadMode = stored.ReadMode,
                    FullReadReason = stored.ReadMode == Storage.ChangedBlocks.ReadModes.Incremental ? null
                        : stored.FullReadReason ?? (depth > 0 ? "backing file: not tracked by the checkpoint"
                            : read?.FullReadReason ?? cbt.Disks[disk.Disk.Target].FullReadReason ?? (stored.ReadMode == Storage.ChangedBlocks.ReadModes.SafetyNet ? null : "no read plan was made for it")),
                    CleanButChanged = stored.CleanButChanged,
                });
                if (stored.Healing is not null) logger.RepositoryHealed(plan.Domain.Name, stored.Healing);
                if (checkStillShutOff) EnsureStillShutOff(plan.Domain);
            }
            if (StoredSizeCheck.Problem(disk.Disk.Target, disk.Disk.Encrypted, disk.Sizes, disk.Chain, storedSizes) is { } problem)
                throw new IncompleteCopyException(problem);
            perDisk[disk.Disk.Target] = (files, diskClock.Elapsed);
        }
        var depthZero = perDisk.ToDictionary(p => p.Key, p => p.Value.Item1[0]);
        session.AttachMetadata(Storage.Catalog.ChangedBlockMetadata.MetadataName, CheckpointSteps.Record(cbt, plan.Selected, depthZero).ToJson());
        var point = session.Commit();
        foreach (var f in depthZero.Values.Where(f => f.CleanButChanged > 0))
            logger.SafetyNetMismatch(plan.Domain.Name, f.FileKey, f.CleanButChanged, point.PointId);
        return new Copy(point, perDisk, clock.Elapsed);
    }

    /// <summary>For the progress total only (a block device's inode says 0 bytes, so ask the device).</summary>
    private static long FileLength(string path)
    {
        try { return Storage.Repository.SourceLength.Of(path); }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException) { return 0; }
    }

    /// <summary>Synchronous progress: reports to the UI and is where the mid-copy fault fires.</summary>
    private sealed class CopyProgress(string key, long before, long total, Action<BackupProgress>? sink) : IProgress<long>
    {
        public void Report(long value)
        {
            if (value > 0) Faults.Hit(Faults.MidCopy);
            sink?.Invoke(new BackupProgress(key, value, before + value, total));
        }
    }

    // ---------------------------------------------------------------- 4. commit (finally)

    /// <summary>Never throws and takes no cancellation token: it is the guest's way home.</summary>
    private async Task<IReadOnlyDictionary<string, MergeOutcome>> MergeBackAsync(JournalEntry entry, Stopwatch overlayClock)
    {
        var outcomes = new Dictionary<string, MergeOutcome>();
        try
        {
            OnCommitStarting?.Invoke();
        }
        catch (Exception e) when (e is not (InjectedFaultException or OutOfMemoryException))
        {
            logger.CommitReportFailed(e);
        }
        StopExport(entry);
        try
        {
            entry.Step = RunStep.Committing;
            journal.Write(entry);
        }
        catch (IOException e)
        {
            logger.JournalBeforeCommitFailed(e);
        }

        var view = ReadDomainView(entry.DomainUuid);
        foreach (var disk in entry.Disks)
        {
            MergeOutcome outcome;
            try
            {
                outcome = await MergeDiskAsync(entry, view, disk);
            }
            catch (Exception e) when (e is not (InjectedFaultException or OutOfMemoryException))
            {
                outcome = new MergeOutcome(false, TimeSpan.Zero, Hints.Explain(e));
            }
            outcomes[disk.Target] = outcome;
            if (!outcome.BackOnBase) continue;
            disk.Merged = true;
            TryJournal(entry);
            Faults.Hit(Faults.AfterPivot);
        }
        overlayClock.Stop(); // snapshot created -> last disk back on its base

        var merged = entry.Disks.Where(d => d.Merged).ToList();
        try
        {
            if (view?.Info is { Persistent: true }) merger.FixPersistentDefinition(entry.DomainUuid, merged);
            foreach (var disk in merged) merger.DeleteOverlay(disk);
            TryJournal(entry);
        }
        catch (Exception e) when (e is LibvirtException or IOException or FormatException)
        {
            logger.MergeCleanupFailed(e, entry.DomainName, e.Message);
            foreach (var disk in merged)
                outcomes[disk.Target] = outcomes[disk.Target] with { BackOnBase = false, Problem = $"back on base, cleanup failed: {e.Message}" };
        }
        return outcomes;
    }

    /// <summary>qemu-nbd holds the frozen base open: the commit could not take its write lock. Normally the planner stopped it already.</summary>
    private void StopExport(JournalEntry entry)
    {
        if (entry.ExportPid is not { } pid || Planner is null) return;
        try
        {
            Planner.StopLeftoverExport(pid);
            entry.ExportPid = null;
        }
        catch (Exception e) when (e is not (InjectedFaultException or OutOfMemoryException))
        {
            logger.ExportNotStopped(e, entry.DomainName, pid, e.Message); // the commit then fails its write lock, safely; recovery stops the export
        }
    }

    /// <summary>What libvirt says about the domain right now. Info null = the domain is gone.</summary>
    private sealed record DomainView(DomainInfo? Info, IReadOnlyList<DomainDisk> Live, IReadOnlyList<DomainDisk> Persistent);

    /// <summary>Null when libvirt could not be read: then nothing is merged or deleted, recovery will do it.</summary>
    private DomainView? ReadDomainView(string uuid)
    {
        try
        {
            var info = hypervisor.FindDomain(uuid);
            if (info is null) return new DomainView(null, [], []);
            return new DomainView(info,
                info.IsActive ? DomainXml.ParseDisks(hypervisor.GetXml(uuid, DomainXmlKind.Live)) : [],
                info.Persistent ? DomainXml.ParseDisks(hypervisor.GetXml(uuid, DomainXmlKind.Persistent)) : []);
        }
        catch (Exception e) when (e is LibvirtException or FormatException)
        {
            logger.DomainUnreadableForCommit(e, uuid, e.Message);
            return null;
        }
    }

    /// <summary>
    /// One disk back onto its base, decided only on what libvirt shows: merged live when it runs on the
    /// overlay, offline when it is shut off on it (or the domain is gone), nothing when it is already on
    /// its base. Anything unclear is left alone (never deleted) for recovery.
    /// </summary>
    private async Task<MergeOutcome> MergeDiskAsync(JournalEntry entry, DomainView? view, JournalDisk disk)
    {
        static MergeOutcome Done() => new(true, TimeSpan.Zero, null);
        static MergeOutcome LeftAlone(string why) => new(false, TimeSpan.Zero, why);
        if (view is null) return LeftAlone("libvirt could not be read; run 'backupd recover'");
        if (view.Info is null)
        {
            logger.DomainGoneCommittingOffline(entry.DomainName, disk.Target);
            return await merger.MergeOfflineAsync(disk);
        }
        var current = (view.Info.IsActive ? view.Live : view.Persistent).FirstOrDefault(d => d.Target == disk.Target);
        logger.MergingBack(
            entry.DomainName, disk.Target, view.Info.IsActive ? "running" : "shut off", current?.SourcePath ?? "(none)");
        if (current is null) return LeftAlone($"disk {disk.Target} is no longer in the domain definition; left for 'backupd recover'");
        if (current.SourcePath == disk.OverlayPath)
            return view.Info.IsActive ? await merger.MergeLiveAsync(entry.DomainUuid, disk) : await merger.MergeOfflineAsync(disk);
        if (current.SourcePath == disk.Base.Path) return Done(); // never switched by the snapshot, or already pivoted
        return LeftAlone($"disk {disk.Target} is on '{current.SourcePath}', neither its base nor its overlay; left alone");
    }

    private void TryJournal(JournalEntry entry)
    {
        try { journal.Write(entry); }
        catch (IOException e) { logger.JournalUpdateFailed(e, entry.RunId); }
    }

    // ---------------------------------------------------------------- shut-off domain

    private async Task<BackupResult> RunShutOffAsync(Plan plan, IBackupSession session, CancellationToken ct)
    {
        Copy? copy = null;
        Exception? failure = null;
        // No NEW for a shut-off domain (libvirt refuses it); the last good checkpoint is carried over, its bitmap keeps recording.
        var cbt = checkpoints.Decide(plan.Domain.Uuid, plan.RunId, live: false, plan.Selected, session.Previous, plan.Read);
        try
        {
            copy = await CopyAsync(plan, session, checkStillShutOff: true, Consistency.ShutOff, cbt, new Dictionary<string, DiskRead>(), ct);
        }
        catch (Exception e) when (e is not OutOfMemoryException)
        {
            failure = e;
            logger.ShutOffBackupFailed(e, plan.Domain.Name, e.Message);
        }
        var outcome = failure is null ? RunOutcome.Succeeded : RunOutcome.Failed;
        return Result(plan, outcome, Consistency.ShutOff, copy, new Dictionary<string, MergeOutcome>(), null, failure, cbt);
    }

    /// <summary>A start during the copy changes the files under us: that copy is not a consistent point.</summary>
    private void EnsureStillShutOff(DomainInfo before)
    {
        var now = hypervisor.FindDomain(before.Uuid);
        if (now is null || now.IsActive || now.Id != before.Id)
            throw new InvalidOperationException($"domain '{before.Name}' was started (or removed) during the copy; the copy is discarded");
    }

    // ---------------------------------------------------------------- result

    private static BackupResult Result(Plan plan, RunOutcome outcome, Consistency? consistency, Copy? copy,
        IReadOnlyDictionary<string, MergeOutcome> merges, TimeSpan? overlayLifetime, Exception? failure, CheckpointChoice cbt)
    {
        var disks = plan.Disks.Select(d =>
        {
            var copied = copy?.PerDisk.GetValueOrDefault(d.Disk.Target);
            var merge = merges.GetValueOrDefault(d.Disk.Target);
            return new DiskResult(d.Disk.Target, d.Journal.Base.Path, plan.Domain.IsActive ? d.Journal.OverlayPath : null,
                copied?.Files ?? [], copied?.Elapsed ?? TimeSpan.Zero, merge?.Elapsed, merge?.BackOnBase ?? !plan.Domain.IsActive, merge?.Problem)
            {
                FullReadReason = copied?.Files.FirstOrDefault() is { ReadMode: not Storage.ChangedBlocks.ReadModes.Incremental } f ? f.FullReadReason : null,
            };
        }).ToList();
        var commitTime = merges.Count == 0 ? (TimeSpan?)null : merges.Values.Aggregate(TimeSpan.Zero, (sum, m) => sum + m.Elapsed);
        return new BackupResult(plan.RunId, plan.Domain.Name, plan.Domain.Uuid, outcome, consistency,
            plan.StartedAt, DateTimeOffset.UtcNow - plan.StartedAt, overlayLifetime, copy?.Elapsed ?? TimeSpan.Zero, commitTime,
            copy?.Point.PointId, disks, plan.Skipped, failure?.Message) { RestorePoint = copy?.Point, Checkpoint = copy is null ? null : cbt.Keep };
    }
}
