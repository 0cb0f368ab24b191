using System.Text.RegularExpressions;

namespace Backupd.Daemon.Workflow;

/// <summary>
/// Overlay file names carry a suffix only backupd writes, <c>.backupd-&lt;runid&gt;.qcow2</c>, so recovery
/// can recognise them from libvirt's XML alone. Run ids sort by time: <c>20261126T092300Z-1a2b3c4d</c>.
/// </summary>
public static partial class OverlayNaming
{
    [GeneratedRegex(@"\.backupd-(?<run>\d{8}T\d{6}Z-[0-9a-f]{8})\.qcow2$")]
    private static partial Regex OverlaySuffix();

    [GeneratedRegex(@"^\d{8}T\d{6}Z-[0-9a-f]{8}$")]
    private static partial Regex RunIdPattern();

    public static string NewRunId(DateTimeOffset now) =>
        $"{now.UtcDateTime:yyyyMMdd'T'HHmmss'Z'}-{Guid.NewGuid().ToString("N")[..8]}";

    public static bool IsRunId(string text) => RunIdPattern().IsMatch(text);

    /// <summary>The run id if <paramref name="path"/> is a backupd overlay, else null.</summary>
    public static string? RunIdOf(string? path)
    {
        if (path is null) return null;
        var m = OverlaySuffix().Match(path);
        return m.Success ? m.Groups["run"].Value : null;
    }

    public static bool IsOverlay(string? path) => RunIdOf(path) is not null;

    /// <summary>
    /// Beside a file base by default. A block device base (or any base when a scratch directory is
    /// configured) gets its overlay in <paramref name="scratchDirectory"/>, prefixed with the
    /// domain and target so two disks with the same image name cannot collide.
    /// </summary>
    public static string OverlayPath(string basePath, string diskType, string runId, string domainUuid, string target, string? scratchDirectory, string stateDirectory)
    {
        var suffix = $".backupd-{runId}.qcow2";
        var name = Path.GetFileName(basePath);
        if (scratchDirectory is null && diskType != "block")
            return basePath + suffix;
        var dir = scratchDirectory ?? Path.Combine(stateDirectory, "overlays");
        return Path.Combine(dir, $"{domainUuid[..8]}-{target}-{name}{suffix}");
    }
}
