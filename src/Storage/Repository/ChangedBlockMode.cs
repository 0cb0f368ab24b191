using Backupd.Storage.ChangedBlocks;
using Backupd.Storage.Delta;

namespace Backupd.Storage.Repository;

/// <summary>
/// How one file of a backup is read, decided before the read from the caller's <see cref="ChangedBlockRead"/> and the
/// repository's latest version. A plan is used only when it was made for exactly the mirror the repository holds
/// (the version the bitmap started at, the same block size, the file's current length, no shrinking); otherwise the
/// file is read fully and the reason kept. Silent corruption is the failure that matters, so every doubt reads.
/// </summary>
internal sealed class ChangedBlockMode
{
    private readonly ReadPlan? _plan;
    private readonly long _length;

    private ChangedBlockMode(bool offered, string readMode, string? reason, ReadPlan? plan, long length)
    {
        Offered = offered;
        ReadMode = readMode;
        FullReadReason = reason;
        _plan = plan;
        _length = length;
    }

    /// <summary>A plan was offered (the point document then records the mode).</summary>
    public bool Offered { get; }

    public string ReadMode { get; }

    public string? FullReadReason { get; }

    public bool SafetyNet => ReadMode == ReadModes.SafetyNet;

    public static ChangedBlockMode Decide(string fileKey, ChangedBlockRead? changed, PointFileDocument? previous, long length, int blockSize)
    {
        if (changed is null)
        {
            return new(false, ReadModes.Full, null, null, length);
        }
        var plan = changed.Plan ?? throw new ArgumentException("a changed-block read needs a plan", nameof(changed));
        var reason = previous is null
            ? $"the repository has no earlier version of '{fileKey}'"
            : previous.VersionId != changed.BasedOnVersionId
                ? $"the repository's latest version of '{fileKey}' is {previous.VersionId}, but the bitmap started recording at version {changed.BasedOnVersionId}"
                : plan.BlockSize != blockSize
                    ? $"the plan has blocks of {plan.BlockSize} bytes, the repository keeps '{fileKey}' in blocks of {blockSize}"
                    : plan.FileLength != length
                        ? $"the plan was made for {plan.FileLength} bytes, the file now has {length}"
                        : length < previous.FileSize
                            ? $"the file shrank from {previous.FileSize} to {length} bytes"
                            : null;
        if (reason is not null)
        {
            return new(true, ReadModes.Full, reason, null, length);
        }
        return new(true, changed.SafetyNet ? ReadModes.SafetyNet : ReadModes.Incremental, null, plan, length);
    }

    /// <summary>
    /// Block index → true for a block that is not read (incremental mode only): the plan calls it clean, it has the same
    /// length in the previous version, and verify did not list it as damaged in the mirror (those are read and healed).
    /// </summary>
    public Func<long, bool>? CarryPredicate(Signature? previous, IReadOnlyCollection<long> damaged)
    {
        if (ReadMode != ReadModes.Incremental || previous is null)
        {
            return null;
        }
        var listed = damaged.Count == 0 ? null : new HashSet<long>(damaged);
        return b => PlanCallsClean(b, previous) && (listed is null || !listed.Contains(b));
    }

    /// <summary>The plan calls block <paramref name="block"/> clean and its bytes line up with the previous version's block.</summary>
    public bool PlanCallsClean(long block, Signature previous) =>
        _plan is not null && !_plan.MustRead(block) && block < previous.BlockCount
        && previous.BlockLength(block) == (int)Math.Min(previous.BlockSize, _length - (block * previous.BlockSize));
}
