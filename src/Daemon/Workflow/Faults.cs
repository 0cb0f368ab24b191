using System.Diagnostics;
using System.Runtime.InteropServices;

namespace Backupd.Daemon.Workflow;

/// <summary>
/// Test-only fault injection: BACKUPD_FAULT=&lt;step&gt;:&lt;kill|throw|stop&gt; makes the process die with
/// SIGKILL (no finally, no flush: like a crash), throw <see cref="InjectedFaultException"/>, or stop itself
/// with SIGSTOP at the step (a test then knows exactly where the run is, whatever the load, and sends SIGCONT).
/// A step hit many times (mid-copy fires on every progress report) stops the process the first time only.
/// </summary>
public static partial class Faults
{
    private const int SigStop = 19;

    [LibraryImport("libc", EntryPoint = "kill", SetLastError = true)]
    private static partial int Kill(int pid, int signal);

    public const string EnvironmentVariable = "BACKUPD_FAULT";
    public const string AfterJournal = "after-journal", AfterSnapshot = "after-snapshot", MidCopy = "mid-copy",
        AfterCopy = "after-copy", MidCommit = "mid-commit", AfterPivot = "after-pivot";

    /// <summary>Changed-block tracking (issue 12): checkpoint NEW made, dirty map being read, point durable before the rotation.</summary>
    public const string AfterCheckpoint = "after-checkpoint", MidMap = "mid-map", BeforeRotation = "before-rotation";

    /// <summary>Chain maintenance (issue 13): shorten and move-disk.</summary>
    public const string ChainAfterJournal = "chain-after-journal", ChainMidJob = "chain-mid-job", ChainAfterJob = "chain-after-job",
        MoveAfterJournal = "move-after-journal", MoveMidCopy = "move-mid-copy", MoveAfterPivot = "move-after-pivot";

    public static readonly IReadOnlyList<string> Steps = [AfterJournal, AfterSnapshot, MidCopy, AfterCopy, MidCommit, AfterPivot,
        AfterCheckpoint, MidMap, BeforeRotation,
        ChainAfterJournal, ChainMidJob, ChainAfterJob, MoveAfterJournal, MoveMidCopy, MoveAfterPivot];

    /// <summary>Overridable for unit tests; read from the environment otherwise.</summary>
    public static string? Spec { get; set; } = Environment.GetEnvironmentVariable(EnvironmentVariable);

    private static int stoppedOnce;

    public static void Hit(string step)
    {
        if (string.IsNullOrEmpty(Spec)) return;
        var parts = Spec.Split(':');
        if (parts.Length != 2 || !Steps.Contains(parts[0]) || parts[1] is not ("kill" or "throw" or "stop"))
            throw new InvalidOperationException($"{EnvironmentVariable}='{Spec}' is not <step>:<kill|throw|stop> with step one of {string.Join(", ", Steps)}");
        if (parts[0] != step) return;
        if (parts[1] == "stop")
        {
            if (Interlocked.Exchange(ref stoppedOnce, 1) == 0)
                _ = Kill(Environment.ProcessId, SigStop); // returns once a SIGCONT arrives
            return;
        }
        if (parts[1] == "kill")
        {
            using var self = Process.GetCurrentProcess();
            self.Kill(); // SIGKILL
            Thread.Sleep(Timeout.Infinite); // never run a finally after the kill
        }
        throw new InjectedFaultException($"injected fault at {step}");
    }
}

public sealed class InjectedFaultException : Exception
{
    public InjectedFaultException() { }
    public InjectedFaultException(string message) : base(message) { }
    public InjectedFaultException(string message, Exception inner) : base(message, inner) { }
}
