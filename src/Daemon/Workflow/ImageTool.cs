namespace Backupd.Daemon.Workflow;

/// <summary>One image of a chain as qemu-img sees it. <see cref="BackingFile"/> is absolute.</summary>
public sealed record ChainImage(string Path, string Format, string? BackingFile, long VirtualSize);

/// <summary>The few qemu-img operations the workflow needs (fakeable; <see cref="Images.QemuImg"/> runs them).</summary>
public interface IImageTool
{
    /// <summary>The image and every backing file below it, top first. Works on images in use (-U).</summary>
    Task<IReadOnlyList<ChainImage>> GetChainAsync(string path, CancellationToken ct);

    /// <summary>Offline commit of <paramref name="overlay"/> into its backing file (the domain must not be running on it).</summary>
    Task CommitAsync(string overlay, CancellationToken ct);
}
