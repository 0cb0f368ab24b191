namespace Backupd.Daemon.Libvirt;

/// <summary>
/// Everything the backup workflow and recovery need from libvirt, and nothing more, so both can be
/// unit-tested against a fake. Domains are addressed by UUID (names can change). Failures throw
/// <see cref="LibvirtException"/>; calls block the calling thread (libvirt has no call timeout).
/// </summary>
public interface IHypervisor : IDisposable
{
    /// <summary>By name or UUID; null when no such domain exists.</summary>
    DomainInfo? FindDomain(string nameOrUuid);

    /// <summary>Every domain, running or defined.</summary>
    IReadOnlyList<DomainInfo> ListDomains();

    string GetXml(string uuid, DomainXmlKind kind);

    /// <summary>
    /// The emulator binary this host uses for domains of <paramref name="virtType"/> (qemu, kvm) on
    /// <paramref name="arch"/> and <paramref name="machine"/> (null: the host's default), from its domain
    /// capabilities; throws when the host has none for them.
    /// </summary>
    string GetHostEmulator(string? virtType, string? arch, string? machine);

    /// <summary>Redefines a persistent domain; pass XML obtained with <see cref="DomainXmlKind.Persistent"/> only.</summary>
    void DefineXml(string xml);

    /// <summary>Sizes of the disk's active image as libvirt sees them (virDomainGetBlockInfo); works for shut-off domains too.</summary>
    BlockSizes GetBlockSizes(string uuid, string target);

    /// <summary>One atomic external disk-only snapshot without libvirt metadata (NO_METADATA|DISK_ONLY|ATOMIC [+QUIESCE]).</summary>
    void CreateDiskOnlySnapshot(string uuid, string snapshotXml, bool quiesce);

    /// <summary>
    /// Active commit of the disk's top image into the image right below it (ACTIVE|SHALLOW: never deeper, never a template),
    /// at most <paramref name="bytesPerSecond"/> (BANDWIDTH_BYTES; null or 0 is unlimited).
    /// </summary>
    void StartActiveCommit(string uuid, string target, long? bytesPerSecond = null);

    /// <summary>The disk's block job, or null when none.</summary>
    BlockJobStatus? GetBlockJob(string uuid, string target);

    /// <summary>Waits with BLOCK_JOB_2 events plus 500 ms polling (events are lost across reconnects, polling is not).</summary>
    Task<BlockJobOutcome> WaitForBlockJobAsync(string uuid, string target, BlockJobGoal goal, TimeSpan timeout);

    /// <summary>Asynchronous pivot of a READY job: wait for <see cref="BlockJobGoal.Gone"/> afterwards.</summary>
    void Pivot(string uuid, string target);

    /// <summary>Cancels the job without pivoting (the disk stays on its top image).</summary>
    void AbortBlockJob(string uuid, string target);

    /// <summary>guest-ping through the agent channel; false when the agent does not answer.</summary>
    bool PingAgent(string uuid, TimeSpan timeout);

    // ---- chain maintenance (issue 13). Default bodies so fakes that do not model chains need not change. ----

    /// <summary>
    /// virDomainBlockCommit of <paramref name="top"/> (null: the active layer) into <paramref name="baseImage"/>; paths as in the live XML.
    /// <paramref name="active"/> adds ACTIVE (the top is the active layer: the job waits READY for a pivot); an intermediate commit ends by itself.
    /// </summary>
    void StartCommit(string uuid, string target, string? top, string baseImage, bool active, long? bytesPerSecond) =>
        throw new NotSupportedException("this hypervisor does not run block commits");

    /// <summary>Block pull into the active layer of every layer above <paramref name="baseImage"/> (null: the whole chain: virDomainBlockPull).</summary>
    void StartPull(string uuid, string target, string? baseImage, long? bytesPerSecond) =>
        throw new NotSupportedException("this hypervisor does not run block pulls");

    /// <summary>virDomainBlockCopy of the disk to <paramref name="destinationXml"/> (a &lt;disk&gt; element), TRANSIENT_JOB (the domain may be persistent).</summary>
    void StartCopy(string uuid, string target, string destinationXml, bool shallow, bool reuseExternal, long? bytesPerSecond) =>
        throw new NotSupportedException("this hypervisor does not run block copies");

    /// <summary>
    /// Bounds every later agent call libvirt makes for this running domain (the quiesce of a snapshot included):
    /// virDomainAgentSetResponseTimeout. libvirt's default waits forever for an agent that hangs.
    /// </summary>
    void SetAgentResponseTimeout(string uuid, TimeSpan timeout);

    /// <summary>virDomainFSThaw of every file system; the number thawed (0 when none was frozen).</summary>
    int ThawFileSystems(string uuid);

    /// <summary>A raw agent command (JSON) with its own timeout: the reply, or null when the agent did not answer in time.</summary>
    string? AgentCommand(string uuid, string command, TimeSpan timeout);

    // ---- drills and instant restores (issue 11). Default bodies so fakes need not change. ----

    /// <summary>virDomainCreateXML: defines and starts a transient domain (gone once destroyed); its UUID.</summary>
    string StartTransient(string xml) => throw new NotSupportedException("this hypervisor does not start domains");

    /// <summary>virDomainCreate of a defined, shut-off domain.</summary>
    void Start(string uuid) => throw new NotSupportedException("this hypervisor does not start domains");

    /// <summary>virDomainBlockJobSetSpeed in bytes/s (0: unlimited) of the disk's running job.</summary>
    void SetBlockJobSpeed(string uuid, string target, long bytesPerSecond) => throw new NotSupportedException("this hypervisor does not run block jobs");

    /// <summary>virDomainDestroy (a power cut); a domain that is not running is left as it is.</summary>
    void Destroy(string uuid) => throw new NotSupportedException("this hypervisor does not stop domains");

    /// <summary>virDomainUndefineFlags with NVRAM, managed-save, snapshot and checkpoint metadata.</summary>
    void Undefine(string uuid) => throw new NotSupportedException("this hypervisor does not undefine domains");
}
