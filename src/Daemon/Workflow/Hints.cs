using Backupd.Daemon.Libvirt;

namespace Backupd.Daemon.Workflow;

/// <summary>Turns the libvirt failures operators meet most into a message that says what to do.</summary>
public static class Hints
{
    public static string Explain(Exception e) => e switch
    {
        LibvirtException { Code: LibvirtErrorCodes.OperationTimeout } l =>
            $"{l.Message}; QEMU does not answer (hung or stopped?): fix the QEMU process, then run 'backupd recover'",
        LibvirtException { Code: LibvirtErrorCodes.AgentUnresponsive or LibvirtErrorCodes.ArgumentUnsupported } l when l.Operation.Contains("Snapshot", StringComparison.Ordinal) =>
            $"{l.Message}; the guest agent cannot quiesce: start qemu-guest-agent in the guest or use --quiesce preferred",
        LibvirtException l when l.LibvirtMessage.Contains("Permission denied", StringComparison.OrdinalIgnoreCase) =>
            $"{l.Message}; on AppArmor hosts keep overlays beside the image (no scratch-directory) and check 'dmesg | grep DENIED'",
        _ => e.Message,
    };
}
