using Backupd.Policies.Retention;

namespace Backupd.Policies.Model;

/// <summary>
/// One entry of a policy's `copies:` (issue 15): after each committed backup the new point is copied to
/// <see cref="Target"/> (a directory, or ssh://[user@]host[:port]/path: what `backupd copy --to` takes), with its own
/// <see cref="Retention"/> (applied by `backupd prune --target`), a wire rate and retries with doubling back-off.
/// </summary>
public sealed record CopyDestination(string Target, string? Key, RetentionRules Retention, long? Bandwidth, int Retries, TimeSpan RetryDelay, SourcePosition Source)
{
    public const int MaxRetries = 20;
    public static readonly TimeSpan DefaultRetryDelay = TimeSpan.FromMinutes(1);
    public const int DefaultRetries = 3;

    /// <summary>The wait before attempt <paramref name="attempt"/> (1 = the first retry): the delay doubled each time, at most 6 h.</summary>
    public TimeSpan BackOff(int attempt) =>
        TimeSpan.FromTicks(Math.Min(TimeSpan.FromHours(6).Ticks, RetryDelay.Ticks * (1L << Math.Min(attempt - 1, 30))));
}
