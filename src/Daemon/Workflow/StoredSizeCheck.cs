using Backupd.Daemon.Libvirt;

namespace Backupd.Daemon.Workflow;

/// <summary>
/// The guard against silent data loss (a block device once stored as 0 bytes): after a disk is copied,
/// each stored file's size is compared with sizes measured by others than the copy itself, namely what
/// libvirt reported for the disk before the snapshot (virDomainGetBlockInfo) and what qemu-img reported for
/// each image of the chain. Pure.
/// </summary>
public static class StoredSizeCheck
{
    /// <summary>
    /// Null when the stored sizes agree, else what is wrong (naming disk, file, expected and got).
    /// <paramref name="storedSizes"/> are the stored files' sizes, top (depth 0) first, like <paramref name="chain"/>.
    /// </summary>
    public static string? Problem(string target, bool encrypted, BlockSizes libvirt, IReadOnlyList<ChainImage> chain, IReadOnlyList<long> storedSizes)
    {
        for (var depth = 0; depth < chain.Count; depth++)
        {
            var image = chain[depth];
            var got = storedSizes[depth];
            string Wrong(string expected) =>
                $"disk '{target}': the stored copy of {image.Path} ({target}.{depth}) has {got} bytes but {expected}; the copy is incomplete, the backup fails";
            if (depth == 0)
            {
                // libvirt's view of the active image: the file or device holds Physical bytes (a qcow2 file only grows
                // while the guest runs), and a plain raw image is exactly the guest's disk.
                if (got < (long)libvirt.Physical)
                    return Wrong($"libvirt reports {libvirt.Physical} bytes (physical) for it");
                if (image.Format == "raw" && !encrypted && got != (long)libvirt.Capacity)
                    return Wrong($"libvirt reports a capacity of {libvirt.Capacity} bytes for the raw disk");
                if (image.Format != "raw" && image.VirtualSize != (long)libvirt.Capacity)
                    return $"disk '{target}': qemu-img reports a virtual size of {image.VirtualSize} bytes for {image.Path} but libvirt a capacity of {libvirt.Capacity}; the backup fails";
            }
            // qemu-img's view of every image of the chain: raw is its own virtual size; no image format is empty.
            if (image.Format == "raw" && got != image.VirtualSize)
                return Wrong($"qemu-img reports a virtual size of {image.VirtualSize} bytes for the raw image");
            if (got == 0 && image.VirtualSize > 0)
                return Wrong($"its virtual size is {image.VirtualSize} bytes");
        }
        return null;
    }
}

/// <summary>A stored file has fewer (or other) bytes than the disk holds: the run fails, no restore point is published.</summary>
public sealed class IncompleteCopyException : Exception
{
    public IncompleteCopyException(string message) : base(message) { }
    public IncompleteCopyException() { }
    public IncompleteCopyException(string message, Exception inner) : base(message, inner) { }
}
