namespace Backupd.Daemon.Chains;

/// <summary>A domain that uses an image file, and through which definition (live: the running QEMU; persistent: the saved one).</summary>
public sealed record ImageUser(string Domain, string Uuid, string Definition, string Target);

/// <summary>
/// One image of a disk's chain, index 0 the active layer. Sizes come from qemu-img (virtual, allocated) and the file
/// system (file size). <see cref="UsedBy"/> lists the other domains whose chains contain this file.
/// </summary>
public sealed record ChainLayer(
    int Index,
    string Path,
    string? Format,
    long? VirtualSize,
    long? FileSize,
    long? AllocatedBytes,
    string? BackingFile,
    string? BackingFormat,
    string? Compat,
    IReadOnlyList<string> BitmapsInUse,
    bool Missing)
{
    public IReadOnlyList<ImageUser> UsedBy { get; init; } = [];
}

/// <summary>A disk's chain from the active layer to the base. Depth is the number of images (1: a standalone image).</summary>
public sealed record DiskChain(string Target, IReadOnlyList<ChainLayer> Layers)
{
    public int Depth => Layers.Count;
    public IReadOnlyList<string> Warnings { get; init; } = [];
}

/// <summary>`backupd chain show` for one domain.</summary>
public sealed record DomainChains(string Domain, string Uuid, bool Running, int? MaxDepth, IReadOnlyList<DiskChain> Disks);

/// <summary>How a shorten merges: commit writes the upper layers down into a lower one, pull copies the lower layers up into the active one.</summary>
public enum ShortenMethod
{
    Commit,
    Pull,
}

/// <summary>A chain operation refused before anything was touched (a shared layer, a bad depth, an unknown disk).</summary>
public sealed class ChainRefusedException(string message, FailureKind kind = FailureKind.BadRequest) : Exception(message)
{
    public FailureKind Kind { get; } = kind;
}
