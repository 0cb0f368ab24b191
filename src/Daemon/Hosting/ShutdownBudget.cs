using System.Diagnostics;
using System.Globalization;
using System.Text.RegularExpressions;
using Backupd.Daemon.Workflow;
using Backupd.Policies.Model;

namespace Backupd.Daemon.Hosting;

/// <summary>
/// The one rule for stopping (docs/operations.md): a stop cancels copies but waits for every running backup
/// to merge its overlays back, so the host waits for the worst merge-back any loaded policy allows, and the
/// unit's TimeoutStopSec must be at least that or systemd kills the daemon mid-merge.
/// A merge-back is per disk: every attempt may use the policy's commit time-box and the pivot time-box,
/// with the retry delays between attempts.
/// </summary>
public static partial class ShutdownBudget
{
    /// <summary>Above the merge-back itself: the run's last catalog writes, the host's own stop.</summary>
    public static readonly TimeSpan Margin = TimeSpan.FromMinutes(1);

    /// <summary>The worst case of one disk's merge-back with <paramref name="commitTimeout"/> per attempt.</summary>
    public static TimeSpan MergeBack(TimeSpan commitTimeout, WorkflowOptions workflow)
    {
        var total = TimeSpan.Zero;
        for (var attempt = 1; attempt <= workflow.CommitAttempts; attempt++)
        {
            total += commitTimeout + workflow.PivotTimeout;
            if (attempt < workflow.CommitAttempts) total += workflow.CommitRetryDelay * attempt; // as OverlayMerger waits
        }
        return total;
    }

    /// <summary>How long a stop waits, and the policy that needs it (null: no policy loaded, the default commit time-box).</summary>
    public static (TimeSpan Wait, PolicyDefinition? Worst) For(IEnumerable<PolicyDefinition> policies, WorkflowOptions workflow)
    {
        var worst = policies.MaxBy(p => p.CommitTimeout);
        return (MergeBack(worst?.CommitTimeout ?? PolicyDefaults.CommitTimeout, workflow) + Margin, worst);
    }

    /// <summary>The warning to log when <paramref name="stopTimeout"/> (the unit's TimeoutStopSec) is shorter than <paramref name="wait"/>; null when it is long enough or unknown.</summary>
    public static string? Warning(TimeSpan wait, PolicyDefinition? worst, TimeSpan? stopTimeout, string unit)
    {
        if (stopTimeout is not { } limit || limit >= wait) return null;
        var why = worst is null
            ? "the default commit time-box"
            : $"policy '{worst.Name}' ({worst.Source.File}): commit {Format(worst.CommitTimeout)} per attempt";
        return $"{unit} has TimeoutStopSec={Format(limit)}, but a stop may wait {Format(wait)} for a merge-back ({why}, " +
            $"every commit attempt with its pivot, plus {Format(Margin)}); systemd would kill backupd mid-merge and leave the VM on its overlay. " +
            $"Set TimeoutStopSec={(int)Math.Ceiling(wait.TotalMinutes)}min or more (systemctl edit {unit})";
    }

    /// <summary>
    /// TimeoutStopSec of the unit the daemon runs in (or backupd.service), from `systemctl show`; null when
    /// systemd cannot say (not booted with systemd, unit not installed).
    /// </summary>
    public static TimeSpan? ReadUnitStopTimeout(string unit)
    {
        try
        {
            var psi = new ProcessStartInfo("systemctl") { RedirectStandardOutput = true, RedirectStandardError = true };
            foreach (var a in new[] { "show", "--property=LoadState", "--property=TimeoutStopUSec", unit }) psi.ArgumentList.Add(a);
            using var process = Process.Start(psi)!;
            var output = process.StandardOutput.ReadToEndAsync();
            _ = process.StandardError.ReadToEndAsync();
            if (!process.WaitForExit(5000) || process.ExitCode != 0) return null;
            var values = output.Result.Split('\n', StringSplitOptions.RemoveEmptyEntries).Select(l => l.Split('=', 2)).Where(p => p.Length == 2).ToDictionary(p => p[0], p => p[1].Trim());
            // systemctl shows defaults for a unit it does not know: only a loaded unit's value means anything.
            return values.GetValueOrDefault("LoadState") == "loaded" && values.TryGetValue("TimeoutStopUSec", out var text) ? ParseTimespan(text) : null;
        }
        catch (System.ComponentModel.Win32Exception)
        {
            return null; // no systemctl: not a systemd host
        }
    }

    /// <summary>The unit this process runs in (from its cgroup), or backupd.service.</summary>
    public static string CurrentUnit()
    {
        try
        {
            var last = File.ReadAllLines("/proc/self/cgroup").Select(l => l[(l.LastIndexOf('/') + 1)..]).FirstOrDefault(n => n.EndsWith(".service", StringComparison.Ordinal));
            return last ?? "backupd.service";
        }
        catch (IOException)
        {
            return "backupd.service";
        }
    }

    /// <summary>systemd's time span as `systemctl show` prints it ("15min", "1h 30min", "1min 30s", "infinity"); null when unparsable.</summary>
    public static TimeSpan? ParseTimespan(string text)
    {
        text = text.Trim();
        if (text == "infinity") return TimeSpan.MaxValue;
        var matches = TimespanPart().Matches(text);
        if (matches.Count == 0 || string.Concat(matches.Select(m => m.Value)).Replace(" ", "", StringComparison.Ordinal) != text.Replace(" ", "", StringComparison.Ordinal)) return null;
        var total = TimeSpan.Zero;
        foreach (Match m in matches)
        {
            var n = double.Parse(m.Groups[1].Value, CultureInfo.InvariantCulture);
            total += m.Groups[2].Value switch
            {
                "us" => TimeSpan.FromMicroseconds(n),
                "ms" => TimeSpan.FromMilliseconds(n),
                "" or "s" => TimeSpan.FromSeconds(n),
                "min" => TimeSpan.FromMinutes(n),
                "h" => TimeSpan.FromHours(n),
                "d" => TimeSpan.FromDays(n),
                _ => TimeSpan.FromDays(7 * n), // w
            };
        }
        return total;
    }

    private static string Format(TimeSpan t) =>
        t.TotalMinutes >= 1 && t.Seconds == 0 ? $"{(int)t.TotalMinutes}min" : t.TotalMinutes >= 1 ? $"{(int)t.TotalMinutes}min {t.Seconds}s" : $"{t.TotalSeconds:0.#}s";

    [GeneratedRegex(@"\s*(\d+(?:\.\d+)?)\s*(us|ms|min|s|h|d|w|)\s*")]
    private static partial Regex TimespanPart();
}
