namespace Backupd.Daemon.Libvirt;

/// <summary>virDomainState values.</summary>
public enum DomainRunState
{
    NoState = 0,
    Running = 1,
    Blocked = 2,
    Paused = 3,
    ShuttingDown = 4,
    Shutoff = 5,
    Crashed = 6,
    PmSuspended = 7,
}

/// <summary>A domain as the workflow sees it. <see cref="Id"/> is null when the domain is not running; it changes at each start.</summary>
public sealed record DomainInfo(string Uuid, string Name, DomainRunState State, int? Id, bool Persistent)
{
    /// <summary>A QEMU process exists (running, paused, ...): disks must be handled live.</summary>
    public bool IsActive => Id is not null;
}

/// <summary>
/// virDomainGetBlockInfo of a disk's active image: Capacity is the guest-visible size, Physical the size of
/// the file or device holding it, Allocation the bytes in use (a sparse file's blocks; qcow2's highest offset).
/// </summary>
public sealed record BlockSizes(ulong Capacity, ulong Allocation, ulong Physical);

/// <summary>virDomainBlockJobType.</summary>
public enum BlockJobType
{
    Unknown = 0,
    Pull = 1,
    Copy = 2,
    Commit = 3,
    ActiveCommit = 4,
    Backup = 5,
}

/// <summary>One block job on one disk. Cur == End is only a hint of readiness: trust the READY event or the live XML.</summary>
public sealed record BlockJobStatus(BlockJobType Type, ulong Cur, ulong End);

/// <summary>How a wait on a block job ended.</summary>
public enum BlockJobOutcome
{
    /// <summary>The job is in the mirroring phase: a pivot is possible.</summary>
    Ready,
    /// <summary>The job is gone (finished, pivoted, or never existed).</summary>
    Gone,
    Failed,
    Canceled,
    TimedOut,
}

/// <summary>What a wait is for.</summary>
public enum BlockJobGoal
{
    /// <summary>Until the job reports READY (or ends).</summary>
    Ready,
    /// <summary>Until no job is left on the disk (after an asynchronous pivot).</summary>
    Gone,
}

public enum DomainXmlKind
{
    /// <summary>The running configuration (flags 0): backing chains, mirror elements, index attributes.</summary>
    Live,
    /// <summary>The persistent definition (INACTIVE|SECURE): the only XML to feed back to DefineXml.</summary>
    Persistent,
}
