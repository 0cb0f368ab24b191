using System.Xml.Linq;
using Backupd.Daemon.Libvirt;
using Backupd.Daemon.Workflow;
using Microsoft.Extensions.Logging;

namespace Backupd.Daemon.Tests.Workflow;

/// <summary>A disk of the fake domain: Chain[0] is the active image, then its backing files.</summary>
public sealed class FakeDisk(string target, string path, string format = "qcow2", string device = "disk")
{
    public string Target { get; } = target;
    public string Device { get; set; } = device;
    public bool ReadOnly { get; set; }
    public List<(string Path, string Format)> Chain { get; } = [(path, format)];
    public string PersistentSource { get; set; } = path;
    public string PersistentFormat { get; set; } = format;
    public BlockJobType? Job { get; set; }
    /// <summary>Waits for READY that time out before the commit is ready (each advances cur by CommitEnd / CommitSlices); 0: ready at once.</summary>
    public int CommitSlices { get; set; }
    public ulong CommitEnd { get; set; } = 1;
    internal int SlicesLeft { get; set; }
    /// <summary>What GetBlockSizes reports; null: capacity = physical = allocation = the active image's file length.</summary>
    public BlockSizes? Sizes { get; set; }
}

/// <summary>One domain whose XML is generated from a small model; records every call in order.</summary>
public sealed class FakeHypervisor(string directory) : IHypervisor
{
    // Unique per instance: the workflow's per-domain lock is host-wide (/run/lock/backupd/UUID.lock), so a
    // fixed UUID made parallel test classes, and test runs of other checkouts, refuse each other's backups.
    public string Uuid { get; } = Guid.NewGuid().ToString();
    public string Name { get; set; } = "vm1";
    public bool Exists { get; set; } = true;
    public int? Id { get; set; } = 7;
    public List<FakeDisk> Disks { get; } = [];
    public List<string> Calls { get; } = [];
    public bool AgentConnected { get; set; }
    public Func<bool, Exception?> SnapshotFails { get; set; } = _ => null;
    public bool PivotFails { get; set; }
    public Action? DuringFind { get; set; }
    public Func<DomainXmlKind, bool> XmlFails { get; set; } = _ => false;

    public FakeDisk AddDisk(string target, string format = "qcow2", string device = "disk")
    {
        var path = Path.Combine(directory, $"{target}.{format}");
        File.WriteAllBytes(path, Enumerable.Repeat((byte)0x5a, 3 << 20).ToArray());
        var disk = new FakeDisk(target, path, format, device);
        Disks.Add(disk);
        return disk;
    }

    private FakeDisk Disk(string target) => Disks.Single(d => d.Target == target);

    public DomainInfo? FindDomain(string nameOrUuid)
    {
        DuringFind?.Invoke();
        return Exists && (nameOrUuid == Name || nameOrUuid == Uuid)
            ? new DomainInfo(Uuid, Name, Id is null ? DomainRunState.Shutoff : DomainRunState.Running, Id, true)
            : null;
    }

    public IReadOnlyList<DomainInfo> ListDomains() => Exists ? [FindDomain(Uuid)!] : [];

    public string GetXml(string uuid, DomainXmlKind kind)
    {
        if (XmlFails(kind)) throw new LibvirtException("virDomainGetXMLDesc", 1, 10, "internal error: injected");
        var devices = new XElement("devices");
        foreach (var d in Disks)
        {
            var disk = new XElement("disk", new XAttribute("type", "file"), new XAttribute("device", d.Device));
            if (kind == DomainXmlKind.Live)
            {
                disk.Add(new XElement("driver", new XAttribute("type", d.Chain[0].Format)), new XElement("source", new XAttribute("file", d.Chain[0].Path)));
                XElement parent = disk;
                foreach (var (path, format) in d.Chain.Skip(1))
                {
                    var store = new XElement("backingStore", new XAttribute("type", "file"), new XElement("format", new XAttribute("type", format)), new XElement("source", new XAttribute("file", path)));
                    parent.Add(store);
                    parent = store;
                }
                parent.Add(new XElement("backingStore"));
                if (d.Job == BlockJobType.ActiveCommit) disk.Add(new XElement("mirror", new XAttribute("job", "active-commit"), new XAttribute("ready", "yes")));
            }
            else
            {
                disk.Add(new XElement("driver", new XAttribute("type", d.PersistentFormat)), new XElement("source", new XAttribute("file", d.PersistentSource)));
            }
            disk.Add(new XElement("target", new XAttribute("dev", d.Target)));
            if (d.ReadOnly) disk.Add(new XElement("readonly"));
            devices.Add(disk);
        }
        var target = new XElement("target", new XAttribute("type", "virtio"), new XAttribute("name", "org.qemu.guest_agent.0"));
        if (kind == DomainXmlKind.Live) target.Add(new XAttribute("state", AgentConnected ? "connected" : "disconnected"));
        devices.Add(new XElement("channel", new XAttribute("type", "unix"), target));
        return new XElement("domain", new XAttribute("type", "qemu"), new XElement("name", Name), new XElement("uuid", Uuid), devices).ToString();
    }

    public string HostEmulator { get; set; } = "/usr/bin/qemu-system-x86_64";

    public string GetHostEmulator(string? virtType, string? arch, string? machine)
    {
        Calls.Add($"emulator {virtType} {arch} {machine}");
        return HostEmulator;
    }

    public void DefineXml(string xml)
    {
        Calls.Add("define");
        foreach (var d in DomainXml.ParseDisks(xml))
        {
            var disk = Disk(d.Target);
            disk.PersistentSource = d.SourcePath!;
            disk.PersistentFormat = d.Format!;
        }
    }

    public BlockSizes GetBlockSizes(string uuid, string target)
    {
        var disk = Disk(target);
        if (disk.Sizes is { } sizes) return sizes;
        var length = (ulong)new FileInfo(disk.Chain[0].Path).Length;
        return new BlockSizes(length, length, length);
    }

    public void CreateDiskOnlySnapshot(string uuid, string snapshotXml, bool quiesce)
    {
        Calls.Add(quiesce ? "snapshot+quiesce" : "snapshot");
        var error = SnapshotFails(quiesce);
        if (error is not null) throw error;
        foreach (var d in XElement.Parse(snapshotXml).Element("disks")!.Elements("disk"))
        {
            var disk = Disk((string)d.Attribute("name")!);
            if ((string?)d.Attribute("snapshot") != "external") continue;
            var overlay = (string)d.Element("source")!.Attribute("file")!;
            File.WriteAllText(overlay, "overlay");
            disk.Chain.Insert(0, (overlay, "qcow2"));
            disk.PersistentSource = overlay; // libvirt rewrites the persistent definition too
            disk.PersistentFormat = "qcow2";
        }
    }

    /// <summary>The bandwidth each StartActiveCommit asked for, by disk target.</summary>
    public Dictionary<string, long?> CommitBandwidths { get; } = [];

    public void StartActiveCommit(string uuid, string target, long? bytesPerSecond = null)
    {
        Calls.Add($"commit {target}");
        CommitBandwidths[target] = bytesPerSecond;
        Disk(target).Job = BlockJobType.ActiveCommit;
        Disk(target).SlicesLeft = Disk(target).CommitSlices;
    }

    public BlockJobStatus? GetBlockJob(string uuid, string target)
    {
        var disk = Disk(target);
        if (disk.Job is not { } t) return null;
        if (disk.CommitSlices == 0) return new BlockJobStatus(t, 1, 1);
        return new BlockJobStatus(t, disk.CommitEnd * (ulong)(disk.CommitSlices - disk.SlicesLeft) / (ulong)disk.CommitSlices, disk.CommitEnd);
    }

    /// <summary>The timeout of each wait for READY, in order (the merger waits in slices to report progress).</summary>
    public List<TimeSpan> ReadyWaits { get; } = [];

    public Task<BlockJobOutcome> WaitForBlockJobAsync(string uuid, string target, BlockJobGoal goal, TimeSpan timeout)
    {
        var disk = Disk(target);
        if (goal == BlockJobGoal.Ready) ReadyWaits.Add(timeout);
        if (disk.Job is null) return Task.FromResult(BlockJobOutcome.Gone);
        if (goal != BlockJobGoal.Ready) return Task.FromResult(BlockJobOutcome.TimedOut);
        if (disk.SlicesLeft == 0) return Task.FromResult(BlockJobOutcome.Ready);
        disk.SlicesLeft--;
        return Task.FromResult(BlockJobOutcome.TimedOut);
    }

    public void Pivot(string uuid, string target)
    {
        Calls.Add($"pivot {target}");
        if (PivotFails) throw new LibvirtException("virDomainBlockJobAbort", 83, 10, "block copy still active");
        var disk = Disk(target);
        disk.Chain.RemoveAt(0);
        disk.Job = null;
        disk.PersistentSource = disk.Chain[0].Path;
        disk.PersistentFormat = disk.Chain[0].Format;
    }

    public void AbortBlockJob(string uuid, string target) => Disk(target).Job = null;

    public bool PingAgent(string uuid, TimeSpan timeout)
    {
        Calls.Add("ping");
        return AgentConnected && !AgentHung;
    }

    public void Dispose() { }

    /// <summary>The channel stays connected but the agent answers nothing (a SIGSTOPped qemu-ga).</summary>
    public bool AgentHung { get; set; }
    /// <summary>The guest's file systems are frozen (e.g. a freeze libvirt gave up on ran when the agent woke).</summary>
    public bool Frozen { get; set; }
    /// <summary>Thaw calls that fail before one works (an agent slow to come back).</summary>
    public int ThawFailures { get; set; }
    public TimeSpan? AgentTimeout { get; private set; }

    public void SetAgentResponseTimeout(string uuid, TimeSpan timeout)
    {
        Calls.Add($"agent-timeout {timeout.TotalSeconds}");
        AgentTimeout = timeout;
    }

    public int ThawFileSystems(string uuid)
    {
        Calls.Add("thaw");
        if (AgentHung || ThawFailures-- > 0) throw new LibvirtException("virDomainFSThaw", LibvirtErrorCodes.AgentUnresponsive, 10, "Guest agent is not responding");
        var thawed = Frozen ? 1 : 0;
        Frozen = false;
        return thawed;
    }

    public string? AgentCommand(string uuid, string command, TimeSpan timeout)
    {
        Calls.Add($"agent {command}");
        if (!AgentConnected || AgentHung) return null;
        return command.Contains("guest-fsfreeze-status", StringComparison.Ordinal)
            ? $$"""{"return":"{{(Frozen ? "frozen" : "thawed")}}"}"""
            : """{"return":{}}""";
    }
}

/// <summary>Chains are declared per top image; anything else is a single image.</summary>
public sealed class FakeImages(List<string> calls) : IImageTool
{
    public Dictionary<string, List<ChainImage>> Chains { get; } = [];

    public Task<IReadOnlyList<ChainImage>> GetChainAsync(string path, CancellationToken ct)
    {
        if (Chains.TryGetValue(path, out var chain)) return Task.FromResult<IReadOnlyList<ChainImage>>(chain);
        if (!File.Exists(path)) throw new IOException($"no such image {path}");
        return Task.FromResult<IReadOnlyList<ChainImage>>([new ChainImage(path, path.EndsWith(".raw", StringComparison.Ordinal) ? "raw" : "qcow2", null, new FileInfo(path).Length)]);
    }

    public Task CommitAsync(string overlay, CancellationToken ct)
    {
        calls.Add($"qemu-img commit {Path.GetFileName(overlay)}");
        return Task.CompletedTask;
    }
}

/// <summary>Records files; <see cref="OnAdd"/> runs before each file is "copied" (throw from it to fail the copy).</summary>
public sealed class FakeTarget(List<string> calls) : IBackupTarget
{
    public bool Writable { get; set; } = true;
    public Action<string>? OnAdd { get; set; }
    /// <summary>The size each "stored" file gets (the copy's own measure of its source); default its virtual size.</summary>
    public Func<ChainImage, long> StoredSize { get; set; } = image => image.VirtualSize;
    public bool Committed { get; private set; }

    public string Description => "fake";

    public void EnsureWritable()
    {
        if (!Writable) throw new BackupRefusedException(RefusalKind.TargetUnavailable, "repository directory '/nope' is not writable");
    }

    public IBackupSession Begin(string groupId, string groupName, CancellationToken ct = default) => new Session(this, calls);

    private sealed class Session(FakeTarget owner, List<string> calls) : IBackupSession
    {
        public async Task<StoredFile> AddFileAsync(string fileKey, ChainImage image, IProgress<long>? progress, CancellationToken ct)
        {
            calls.Add($"copy {fileKey} {Path.GetFileName(image.Path)}");
            owner.OnAdd?.Invoke(fileKey);
            await Task.Yield();
            ct.ThrowIfCancellationRequested();
            progress?.Report(image.VirtualSize);
            return new StoredFile(fileKey, image.VirtualSize, image.VirtualSize / 2, "sha256:00", TimeSpan.FromMilliseconds(1), owner.StoredSize(image));
        }

        public void AttachMetadata(string name, string content) => calls.Add($"metadata {name}");

        public Backupd.Storage.Repository.RestorePointInfo Commit()
        {
            calls.Add("point committed");
            owner.Committed = true;
            return new("point-1", "group", "group", DateTimeOffset.UnixEpoch, [], new Dictionary<string, string>());
        }

        public void Dispose() { }
    }
}

public sealed class ListLogger : ILogger
{
    public List<(LogLevel Level, string Message)> Entries { get; } = [];
    public IDisposable? BeginScope<TState>(TState state) where TState : notnull => null;
    public bool IsEnabled(LogLevel logLevel) => true;
    public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter) =>
        Entries.Add((logLevel, formatter(state, exception)));
}
