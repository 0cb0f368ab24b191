using System.Diagnostics;
using System.Text;
using System.Text.Json;
using Backupd.Daemon.Libvirt;

namespace Backupd.Daemon.Drills;

/// <summary>What a check command run in the guest did.</summary>
public sealed record GuestExecResult(int? ExitCode, string Output, bool TimedOut);

/// <summary>
/// A command run inside the guest through the agent's guest-exec (`/bin/sh -c COMMAND`, output captured), polled with
/// guest-exec-status until it exits or the deadline passes. Every agent call is bounded.
/// </summary>
public static class GuestExec
{
    private static readonly TimeSpan CallTimeout = TimeSpan.FromSeconds(5);

    public static async Task<GuestExecResult> RunAsync(IHypervisor hypervisor, string uuid, string command, TimeSpan timeout, CancellationToken ct)
    {
        var clock = Stopwatch.StartNew();
        var start = JsonSerializer.Serialize(new
        {
            execute = "guest-exec",
            arguments = new Dictionary<string, object> { ["path"] = "/bin/sh", ["arg"] = new[] { "-c", command }, ["capture-output"] = true },
        });
        var reply = hypervisor.AgentCommand(uuid, start, CallTimeout)
            ?? throw new DrillException("the guest agent did not answer guest-exec (is guest-exec allowed in the guest's qemu-ga?)");
        long pid;
        using (var json = JsonDocument.Parse(reply)) pid = json.RootElement.GetProperty("return").GetProperty("pid").GetInt64();
        var status = JsonSerializer.Serialize(new { execute = "guest-exec-status", arguments = new { pid } });
        while (clock.Elapsed < timeout)
        {
            ct.ThrowIfCancellationRequested();
            if (hypervisor.AgentCommand(uuid, status, CallTimeout) is { } s)
            {
                using var json = JsonDocument.Parse(s);
                var r = json.RootElement.GetProperty("return");
                if (r.TryGetProperty("exited", out var exited) && exited.GetBoolean())
                {
                    int? code = r.TryGetProperty("exitcode", out var c) ? c.GetInt32() : null; // killed by a signal: no exit code
                    return new GuestExecResult(code, Decode(r, "out-data") + Decode(r, "err-data"), false);
                }
            }
            await Task.Delay(250, ct);
        }
        return new GuestExecResult(null, "", true);
    }

    private static string Decode(JsonElement r, string name)
    {
        if (!r.TryGetProperty(name, out var data) || data.GetString() is not { } b64) return "";
        var text = Encoding.UTF8.GetString(Convert.FromBase64String(b64));
        return text.Length <= 4000 ? text : text[..4000] + "…";
    }
}

/// <summary>A drill step that failed: the drill is recorded failed with this message.</summary>
public sealed class DrillException : Exception
{
    public DrillException(string message) : base(message) { }
    public DrillException(string message, Exception inner) : base(message, inner) { }
    public DrillException() { }
}
