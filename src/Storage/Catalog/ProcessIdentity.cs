using System.Globalization;

namespace Backupd.Storage.Catalog;

/// <summary>
/// Who runs something: host name, pid, and a start token (boot id + the process's start time in
/// clock ticks since boot, from /proc). A pid alone is reused; pid + start token names one
/// process for the life of the machine, so a run's owner can be checked after a crash.
/// </summary>
public sealed record ProcessIdentity(string Host, int Pid, string StartToken)
{
    // Initialised lazily: static initialisers run in text order and this one needs BootIdValue.
    private static readonly Lazy<ProcessIdentity> CurrentValue =
        new(() => new(Environment.MachineName, Environment.ProcessId, StartTokenOf(Environment.ProcessId) ?? "unknown"));

    /// <summary>This process.</summary>
    public static ProcessIdentity Current => CurrentValue.Value;

    /// <summary>True if the process <paramref name="pid"/> on this host still exists and is the one that had <paramref name="startToken"/>.</summary>
    public static bool IsAliveHere(int pid, string startToken)
    {
        var now = StartTokenOf(pid);
        if (now is null) return false;
        // Without /proc data for the original we can only say "a process with this pid exists".
        return startToken == "unknown" || now == startToken;
    }

    /// <summary>"&lt;boot id&gt;:&lt;start ticks&gt;" for a live process, null if it does not exist.</summary>
    public static string? StartTokenOf(int pid)
    {
        try
        {
            var stat = File.ReadAllText($"/proc/{pid}/stat");
            // comm (field 2) may contain spaces and parentheses: split after the last ')'.
            var fields = stat[(stat.LastIndexOf(')') + 2)..].Split(' ');
            var startTicks = long.Parse(fields[19], CultureInfo.InvariantCulture); // field 22 (starttime)
            return $"{BootId}:{startTicks}";
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or FormatException or IndexOutOfRangeException or ArgumentOutOfRangeException)
        {
            return null;
        }
    }

    private static readonly Lazy<string> BootIdValue = new(() =>
    {
        try { return File.ReadAllText("/proc/sys/kernel/random/boot_id").Trim(); }
        catch (IOException) { return "noboot"; }
    });

    private static string BootId => BootIdValue.Value;
}
