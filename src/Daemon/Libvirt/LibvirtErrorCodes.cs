namespace Backupd.Daemon.Libvirt;

/// <summary>virErrorNumber values the workflow reacts to (see docs/workflow.md).</summary>
public static class LibvirtErrorCodes
{
    public const int InternalError = 1;
    public const int InvalidArg = 8;
    public const int NoDomain = 42;
    public const int OperationInvalid = 55;
    public const int ConfigUnsupported = 67;
    public const int OperationTimeout = 68;
    public const int ArgumentUnsupported = 74;
    public const int BlockCopyActive = 83;
    public const int AgentUnresponsive = 86;
    public const int NoDomainCheckpoint = 103;
    /// <summary>A checkpoint whose bitmap is missing or broken (e.g. after a kill -9 of QEMU).</summary>
    public const int CheckpointInconsistent = 109;
}
