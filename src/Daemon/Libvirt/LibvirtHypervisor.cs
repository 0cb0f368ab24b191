using System.Diagnostics;
using System.Runtime.InteropServices;
using Backupd.Daemon.Libvirt.Native;

namespace Backupd.Daemon.Libvirt;

/// <summary>
/// <see cref="IHypervisor"/> over our own bindings. Domains are looked up per call (cheap, and a
/// handle never outlives a reconnect). When libvirtd restarts, the next call opens a new connection
/// and re-registers events; waits re-query state, so events lost meanwhile do not matter.
/// </summary>
public sealed class LibvirtHypervisor : IHypervisor
{
    private static readonly TimeSpan PollInterval = TimeSpan.FromMilliseconds(500);
    private readonly Lock gate = new();
    private readonly BlockJobEvents events = new();

    /// <summary>The BLOCK_JOB_2 event hub (for tests that check events arrive, not only polling).</summary>
    internal BlockJobEvents Events => events;
    private LibvirtConnection connection;
    private int eventsCallbackId = -1;

    public string Uri { get; }

    /// <summary>How long a reconnect keeps trying while libvirtd is away (restarting); the first connect does not wait.</summary>
    public TimeSpan ReconnectTimeout { get; }

    /// <summary>Default <see cref="ReconnectTimeout"/>: a libvirtd restart re-attaches every running QEMU before it listens again.</summary>
    public static readonly TimeSpan DefaultReconnectTimeout = TimeSpan.FromSeconds(60);

    private LibvirtHypervisor(string uri, LibvirtConnection connection, TimeSpan reconnectTimeout)
    {
        Uri = uri;
        this.connection = connection;
        ReconnectTimeout = reconnectTimeout;
        RegisterEvents();
    }

    /// <summary>Starts the event loop (before the connection, as libvirt requires) and connects.</summary>
    public static LibvirtHypervisor Open(string uri, TimeSpan? reconnectTimeout = null)
    {
        LibvirtEventLoop.EnsureStarted();
        return new LibvirtHypervisor(uri, LibvirtConnection.Open(uri), reconnectTimeout ?? DefaultReconnectTimeout);
    }

    private void RegisterEvents()
    {
        try { eventsCallbackId = events.Register(connection.Handle); }
        catch (LibvirtException) { eventsCallbackId = -1; } // polling alone still works
    }

    private ConnectionHandle Conn
    {
        get
        {
            lock (gate)
            {
                if (Interop.virConnectIsAlive(connection.Handle) == 1) return connection.Handle;
                Interop.virResetLastError();
                var fresh = Reconnect();
                var old = connection;
                connection = fresh;
                eventsCallbackId = -1;
                old.Dispose();
                RegisterEvents();
                return connection.Handle;
            }
        }
    }

    /// <summary>
    /// A new connection after the old one closed. While libvirtd restarts its socket is missing or
    /// refuses connections; QEMU keeps running (and committing) meanwhile, so waiting is the right
    /// answer, up to <see cref="ReconnectTimeout"/>.
    /// </summary>
    private LibvirtConnection Reconnect()
    {
        var clock = Stopwatch.StartNew();
        while (true)
        {
            try { return LibvirtConnection.Open(Uri); }
            catch (LibvirtException) when (clock.Elapsed < ReconnectTimeout)
            {
                Thread.Sleep(PollInterval);
            }
        }
    }

    private DomainHandle Lookup(string uuid)
    {
        var conn = Conn;
        var handle = LibvirtErrors.Check(Interop.virDomainLookupByUUIDString(conn, uuid));
        handle.KeepConnectionAlive(conn);
        return handle;
    }

    public DomainInfo? FindDomain(string nameOrUuid)
    {
        var conn = Conn;
        var handle = Guid.TryParse(nameOrUuid, out _)
            ? Interop.virDomainLookupByUUIDString(conn, nameOrUuid)
            : Interop.virDomainLookupByName(conn, nameOrUuid);
        if (handle.IsInvalid)
        {
            var error = LibvirtErrors.Last(Guid.TryParse(nameOrUuid, out _) ? "virDomainLookupByUUIDString" : "virDomainLookupByName");
            handle.SetHandleAsInvalid();
            if (error.Code == LibvirtErrorCodes.NoDomain) return null;
            throw error;
        }
        handle.KeepConnectionAlive(conn);
        using (handle) return Describe(handle);
    }

    public unsafe IReadOnlyList<DomainInfo> ListDomains()
    {
        var conn = Conn;
        var count = LibvirtErrors.Check(Interop.virConnectListAllDomains(conn, out var array,
            Interop.VIR_CONNECT_LIST_DOMAINS_ACTIVE | Interop.VIR_CONNECT_LIST_DOMAINS_INACTIVE));
        var handles = new List<DomainHandle>(count);
        try
        {
            for (var i = 0; i < count; i++) handles.Add(DomainHandle.FromOwned(array[i], conn));
        }
        finally
        {
            NativeMemory.Free(array);
        }
        var result = new List<DomainInfo>(count);
        foreach (var h in handles)
        {
            using (h)
            {
                try { result.Add(Describe(h)); }
                catch (LibvirtException e) when (e.Code == LibvirtErrorCodes.NoDomain) { } // undefined meanwhile
            }
        }
        return result;
    }

    private static unsafe DomainInfo Describe(DomainHandle h)
    {
        LibvirtErrors.Check(Interop.virDomainGetState(h, out var state, out _, 0));
        var id = Interop.virDomainGetID(h);
        var name = Marshal.PtrToStringUTF8((IntPtr)Interop.virDomainGetName(h)) ?? "";
        var buf = stackalloc byte[Interop.VIR_UUID_STRING_BUFLEN];
        LibvirtErrors.Check(Interop.virDomainGetUUIDString(h, buf));
        var uuid = Marshal.PtrToStringUTF8((IntPtr)buf)!;
        var persistent = LibvirtErrors.Check(Interop.virDomainIsPersistent(h)) == 1;
        return new DomainInfo(uuid, name, (DomainRunState)state, id == uint.MaxValue ? null : (int)id, persistent);
    }

    public unsafe string GetXml(string uuid, DomainXmlKind kind)
    {
        using var h = Lookup(uuid);
        var flags = kind == DomainXmlKind.Persistent ? Interop.VIR_DOMAIN_XML_INACTIVE | Interop.VIR_DOMAIN_XML_SECURE : 0u;
        var raw = Interop.virDomainGetXMLDesc(h, flags);
        if (raw == null) throw LibvirtErrors.Last("virDomainGetXMLDesc");
        return OwnedStrings.Take(raw)!;
    }

    public unsafe string GetHostEmulator(string? virtType, string? arch, string? machine)
    {
        var raw = Interop.virConnectGetDomainCapabilities(Conn, null, arch, machine, virtType, 0);
        if (raw == null) throw LibvirtErrors.Last("virConnectGetDomainCapabilities");
        var xml = OwnedStrings.Take(raw)!;
        var path = System.Xml.Linq.XElement.Parse(xml).Element("path")?.Value;
        return string.IsNullOrWhiteSpace(path)
            ? throw new LibvirtException("virConnectGetDomainCapabilities", 0, 0, "the domain capabilities name no emulator <path>")
            : path.Trim();
    }

    public void DefineXml(string xml)
    {
        using var h = LibvirtErrors.Check(Interop.virDomainDefineXML(Conn, xml));
    }

    public BlockSizes GetBlockSizes(string uuid, string target)
    {
        using var h = Lookup(uuid);
        LibvirtErrors.Check(Interop.virDomainGetBlockInfo(h, target, out var info, 0));
        return new BlockSizes(info.Capacity, info.Allocation, info.Physical);
    }

    public void CreateDiskOnlySnapshot(string uuid, string snapshotXml, bool quiesce)
    {
        using var h = Lookup(uuid);
        var flags = Interop.VIR_DOMAIN_SNAPSHOT_CREATE_NO_METADATA | Interop.VIR_DOMAIN_SNAPSHOT_CREATE_DISK_ONLY
            | Interop.VIR_DOMAIN_SNAPSHOT_CREATE_ATOMIC | (quiesce ? Interop.VIR_DOMAIN_SNAPSHOT_CREATE_QUIESCE : 0);
        using var snapshot = LibvirtErrors.Check(Interop.virDomainSnapshotCreateXML(h, snapshotXml, flags));
    }

    public void StartActiveCommit(string uuid, string target, long? bytesPerSecond = null)
    {
        using var h = Lookup(uuid);
        LibvirtErrors.Check(Interop.virDomainBlockCommit(h, target, null, null, new CULong((nuint)Math.Max(0, bytesPerSecond ?? 0)),
            Interop.VIR_DOMAIN_BLOCK_COMMIT_ACTIVE | Interop.VIR_DOMAIN_BLOCK_COMMIT_SHALLOW | Interop.VIR_DOMAIN_BLOCK_COMMIT_BANDWIDTH_BYTES));
    }

    public BlockJobStatus? GetBlockJob(string uuid, string target)
    {
        using var h = Lookup(uuid);
        var found = LibvirtErrors.Check(Interop.virDomainGetBlockJobInfo(h, target, out var info, 0));
        return found == 0 ? null : new BlockJobStatus((BlockJobType)info.Type, info.Cur, info.End);
    }

    public void Pivot(string uuid, string target)
    {
        using var h = Lookup(uuid);
        LibvirtErrors.Check(Interop.virDomainBlockJobAbort(h, target,
            Interop.VIR_DOMAIN_BLOCK_JOB_ABORT_ASYNC | Interop.VIR_DOMAIN_BLOCK_JOB_ABORT_PIVOT));
    }

    public void AbortBlockJob(string uuid, string target)
    {
        using var h = Lookup(uuid);
        LibvirtErrors.Check(Interop.virDomainBlockJobAbort(h, target, 0));
    }

    public async Task<BlockJobOutcome> WaitForBlockJobAsync(string uuid, string target, BlockJobGoal goal, TimeSpan timeout)
    {
        var clock = Stopwatch.StartNew();
        while (true)
        {
            // Arm before polling so an event between the poll and the wait is not missed.
            var next = events.Next(uuid, target);
            var polled = Poll(uuid, target, goal);
            if (polled is not null) return polled.Value;
            var left = timeout - clock.Elapsed;
            if (left <= TimeSpan.Zero) return BlockJobOutcome.TimedOut;
            var finished = await Task.WhenAny(next, Task.Delay(left < PollInterval ? left : PollInterval));
            if (finished != next) continue;
            switch (next.Result)
            {
                case BlockJobEvents.Ready when goal == BlockJobGoal.Ready: return BlockJobOutcome.Ready;
                case BlockJobEvents.Failed: return BlockJobOutcome.Failed;
                case BlockJobEvents.Canceled: return BlockJobOutcome.Canceled;
                default: continue; // COMPLETED, or READY while waiting for Gone: confirm by polling
            }
        }
    }

    /// <summary>The state right now, or null to keep waiting. Ready comes from the live XML's mirror element.</summary>
    private BlockJobOutcome? Poll(string uuid, string target, BlockJobGoal goal)
    {
        var job = GetBlockJob(uuid, target);
        if (job is null) return BlockJobOutcome.Gone;
        if (goal == BlockJobGoal.Ready)
        {
            var disk = DomainXml.ParseDisks(GetXml(uuid, DomainXmlKind.Live)).FirstOrDefault(d => d.Target == target);
            if (disk?.MirrorReady == true) return BlockJobOutcome.Ready;
        }
        return null;
    }

    public bool PingAgent(string uuid, TimeSpan timeout) => AgentCommand(uuid, """{"execute":"guest-ping"}""", timeout) is not null;

    public void Dispose()
    {
        lock (gate)
        {
            if (eventsCallbackId >= 0 && Interop.virConnectDomainEventDeregisterAny(connection.Handle, eventsCallbackId) < 0)
                Interop.virResetLastError();
            eventsCallbackId = -1;
            connection.Dispose();
        }
    }

    // ---- chain maintenance (issue 13) ----

    private static CULong Rate(long? bytesPerSecond) => new((nuint)Math.Max(0, bytesPerSecond ?? 0));

    public void StartCommit(string uuid, string target, string? top, string baseImage, bool active, long? bytesPerSecond)
    {
        using var h = Lookup(uuid);
        LibvirtErrors.Check(Interop.virDomainBlockCommit(h, target, baseImage, top, Rate(bytesPerSecond),
            (active ? Interop.VIR_DOMAIN_BLOCK_COMMIT_ACTIVE : 0) | Interop.VIR_DOMAIN_BLOCK_COMMIT_BANDWIDTH_BYTES));
    }

    public void StartPull(string uuid, string target, string? baseImage, long? bytesPerSecond)
    {
        using var h = Lookup(uuid);
        LibvirtErrors.Check(baseImage is null
            ? Interop.virDomainBlockPull(h, target, Rate(bytesPerSecond), Interop.VIR_DOMAIN_BLOCK_PULL_BANDWIDTH_BYTES)
            : Interop.virDomainBlockRebase(h, target, baseImage, Rate(bytesPerSecond), Interop.VIR_DOMAIN_BLOCK_REBASE_BANDWIDTH_BYTES));
    }

    public unsafe void StartCopy(string uuid, string target, string destinationXml, bool shallow, bool reuseExternal, long? bytesPerSecond)
    {
        using var h = Lookup(uuid);
        var flags = Interop.VIR_DOMAIN_BLOCK_COPY_TRANSIENT_JOB
            | (shallow ? Interop.VIR_DOMAIN_BLOCK_COPY_SHALLOW : 0) | (reuseExternal ? Interop.VIR_DOMAIN_BLOCK_COPY_REUSE_EXT : 0);
        Interop.VirTypedParameter bandwidth = default;
        var count = 0;
        if (bytesPerSecond is > 0)
        {
            var name = System.Text.Encoding.ASCII.GetBytes(Interop.VIR_DOMAIN_BLOCK_COPY_BANDWIDTH);
            for (var i = 0; i < name.Length; i++) bandwidth.Field[i] = name[i];
            bandwidth.Type = Interop.VIR_TYPED_PARAM_ULLONG;
            bandwidth.Value = (ulong)bytesPerSecond.Value;
            count = 1;
        }
        LibvirtErrors.Check(Interop.virDomainBlockCopy(h, target, destinationXml, count == 0 ? null : &bandwidth, count, flags));
    }

    public void SetAgentResponseTimeout(string uuid, TimeSpan timeout)
    {
        using var h = Lookup(uuid);
        if (Interop.virDomainAgentSetResponseTimeout(h, AgentSeconds(timeout), 0) < 0)
            throw LibvirtErrors.Last("virDomainAgentSetResponseTimeout");
    }

    public int ThawFileSystems(string uuid)
    {
        using var h = Lookup(uuid);
        var thawed = Interop.virDomainFSThaw(h, IntPtr.Zero, 0, 0);
        if (thawed < 0) throw LibvirtErrors.Last("virDomainFSThaw");
        return thawed;
    }

    public unsafe string? AgentCommand(string uuid, string command, TimeSpan timeout)
    {
        using var h = Lookup(uuid);
        var reply = Interop.virDomainQemuAgentCommand(h, command, AgentSeconds(timeout), 0);
        if (reply == null)
        {
            _ = LibvirtErrors.Last("virDomainQemuAgentCommand"); // consume this thread's error
            return null;
        }
        return OwnedStrings.Take(reply);
    }

    /// <summary>libvirt takes whole seconds, and 0 would mean "do not wait at all".</summary>
    private static int AgentSeconds(TimeSpan timeout) => Math.Max(1, (int)Math.Ceiling(timeout.TotalSeconds));

    // ---- drills and instant restores (issue 11) ----

    public unsafe string StartTransient(string xml)
    {
        using var h = LibvirtErrors.Check(Interop.virDomainCreateXML(Conn, xml, 0));
        var buffer = stackalloc byte[Interop.VIR_UUID_STRING_BUFLEN];
        if (Interop.virDomainGetUUIDString(h, buffer) < 0) throw LibvirtErrors.Last("virDomainGetUUIDString");
        return new string((sbyte*)buffer);
    }

    public void SetBlockJobSpeed(string uuid, string target, long bytesPerSecond)
    {
        using var h = Lookup(uuid);
        LibvirtErrors.Check(Interop.virDomainBlockJobSetSpeed(h, target, Rate(bytesPerSecond), Interop.VIR_DOMAIN_BLOCK_JOB_SPEED_BANDWIDTH_BYTES));
    }

    public void Start(string uuid)
    {
        using var h = Lookup(uuid);
        LibvirtErrors.Check(Interop.virDomainCreate(h));
    }

    public void Destroy(string uuid)
    {
        using var h = Lookup(uuid);
        if (Interop.virDomainDestroy(h) < 0)
        {
            var error = LibvirtErrors.Last("virDomainDestroy");
            if (error.Code != LibvirtErrorCodes.OperationInvalid) throw error; // not running: nothing to stop
        }
    }

    public void Undefine(string uuid)
    {
        using var h = Lookup(uuid);
        LibvirtErrors.Check(Interop.virDomainUndefineFlags(h, Interop.VIR_DOMAIN_UNDEFINE_MANAGED_SAVE | Interop.VIR_DOMAIN_UNDEFINE_SNAPSHOTS_METADATA
            | Interop.VIR_DOMAIN_UNDEFINE_NVRAM | Interop.VIR_DOMAIN_UNDEFINE_CHECKPOINTS_METADATA));
    }
}
