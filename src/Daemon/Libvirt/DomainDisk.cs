namespace Backupd.Daemon.Libvirt;

/// <summary>One image below a disk's active layer (a live XML &lt;backingStore&gt;), nearest first.</summary>
public sealed record BackingImage(string Type, string? Path, string? Format);

/// <summary>
/// A &lt;disk&gt; of a domain definition. <see cref="SourcePath"/> is source@file or source@dev (null for
/// network/volume disks and empty cdroms). <see cref="BackingChain"/> is only filled in live XML.
/// </summary>
public sealed record DomainDisk(
    string Target,
    string Device,
    string Type,
    string? SourcePath,
    string? Format,
    bool ReadOnly,
    bool Shareable,
    string? NetworkProtocol,
    string? EncryptionXml,
    IReadOnlyList<BackingImage> BackingChain,
    string? MirrorJob,
    bool MirrorReady)
{
    public bool Encrypted => EncryptionXml is not null;
}
