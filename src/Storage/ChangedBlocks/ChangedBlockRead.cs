namespace Backupd.Storage.ChangedBlocks;

/// <summary>
/// What the caller asks of one file in <c>BackupSession.AddFileAsync</c>: read only the blocks of <paramref name="Plan"/>,
/// or, with <paramref name="SafetyNet"/>, read everything and count the blocks the plan called clean that differ from the
/// mirror (that count must be 0). <paramref name="BasedOnVersionId"/>: the repository version of the file the bitmap
/// started recording at; if the repository's latest version is another one, the plan is not used.
/// </summary>
public sealed record ChangedBlockRead(ReadPlan Plan, bool SafetyNet, string BasedOnVersionId);

/// <summary>The values of <c>FileVersionInfo.ReadMode</c>.</summary>
public static class ReadModes
{
    /// <summary>Only the blocks of the read plan were read.</summary>
    public const string Incremental = "incremental";

    /// <summary>The whole file was read (no plan, or the plan could not be used: see FullReadReason).</summary>
    public const string Full = "full";

    /// <summary>The whole file was read and checked against the plan (CleanButChanged).</summary>
    public const string SafetyNet = "safety-net";
}
