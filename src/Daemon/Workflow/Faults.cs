using System.Diagnostics;

namespace Backupd.Daemon.Workflow;

/// <summary>
/// Test-only fault injection: BACKUPD_FAULT=&lt;step&gt;:&lt;kill|throw&gt; makes the process die with
/// SIGKILL (no finally, no flush: like a crash) or throw <see cref="InjectedFaultException"/> at the step.
/// </summary>
public static class Faults
{
    public const string EnvironmentVariable = "BACKUPD_FAULT";
    public const string AfterJournal = "after-journal", AfterSnapshot = "after-snapshot", MidCopy = "mid-copy",
        AfterCopy = "after-copy", MidCommit = "mid-commit", AfterPivot = "after-pivot";

    public static readonly IReadOnlyList<string> Steps = [AfterJournal, AfterSnapshot, MidCopy, AfterCopy, MidCommit, AfterPivot];

    /// <summary>Overridable for unit tests; read from the environment otherwise.</summary>
    public static string? Spec { get; set; } = Environment.GetEnvironmentVariable(EnvironmentVariable);

    public static void Hit(string step)
    {
        if (string.IsNullOrEmpty(Spec)) return;
        var parts = Spec.Split(':');
        if (parts.Length != 2 || !Steps.Contains(parts[0]) || parts[1] is not ("kill" or "throw"))
            throw new InvalidOperationException($"{EnvironmentVariable}='{Spec}' is not <step>:<kill|throw> with step one of {string.Join(", ", Steps)}");
        if (parts[0] != step) return;
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
