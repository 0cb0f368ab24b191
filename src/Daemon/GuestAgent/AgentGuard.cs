using System.Diagnostics;
using System.Text.Json;
using Backupd.Daemon.Libvirt;
using Microsoft.Extensions.Logging;

namespace Backupd.Daemon.GuestAgent;

/// <summary>What became of the guest's file systems after a quiesce failed.</summary>
public enum ThawState
{
    /// <summary>The agent says thawed and nothing had to be thawed.</summary>
    NotFrozen,
    /// <summary>They were frozen (a freeze libvirt gave up on ran anyway) and are thawed now.</summary>
    Thawed,
    /// <summary>The agent did not answer within the budget: the guest may freeze when it wakes.</summary>
    Unconfirmed,
}

public sealed record ThawOutcome(ThawState State, int Attempts, TimeSpan Elapsed, string? Problem);

/// <summary>
/// Keeps a hung guest agent from stalling a run or leaving the guest frozen. libvirt waits for the agent
/// forever by default and "agent connected" in the XML only says the channel is open (a SIGSTOPped
/// qemu-ga keeps it open): so every agent call is bounded, the agent must answer a guest-ping before a
/// quiesced snapshot, and after any quiesce failure the guest is thawed until guest-fsfreeze-status says so.
/// </summary>
public sealed class AgentGuard(IHypervisor hypervisor, TimeSpan timeout, ILogger logger)
{
    public static readonly TimeSpan DefaultTimeout = TimeSpan.FromSeconds(5);
    public static readonly TimeSpan DefaultThawBudget = TimeSpan.FromSeconds(30);
    private static readonly TimeSpan RetryDelay = TimeSpan.FromSeconds(1);

    public TimeSpan Timeout => timeout;

    /// <summary>Bounds libvirt's agent calls for the domain, then pings: null when the agent answered, else why not.</summary>
    public string? Probe(string uuid, string name)
    {
        try { hypervisor.SetAgentResponseTimeout(uuid, timeout); }
        catch (LibvirtException e) { GuestAgentLog.TimeoutNotSet(logger, name, timeout.TotalSeconds, e); }
        var clock = Stopwatch.StartNew();
        if (hypervisor.PingAgent(uuid, timeout)) return null;
        var reason = $"the guest agent did not answer a guest-ping within {timeout.TotalSeconds:0.#} s (gave up after {clock.Elapsed.TotalSeconds:0.0} s)";
        GuestAgentLog.AgentNotAnswering(logger, name, reason);
        return reason;
    }

    /// <summary>"frozen", "thawed", or null when the agent does not answer (in <see cref="Timeout"/>).</summary>
    public string? FreezeStatus(string uuid)
    {
        var reply = hypervisor.AgentCommand(uuid, """{"execute":"guest-fsfreeze-status"}""", timeout);
        if (reply is null) return null;
        try
        {
            using var json = JsonDocument.Parse(reply);
            return json.RootElement.TryGetProperty("return", out var r) && r.ValueKind == JsonValueKind.String ? r.GetString() : null;
        }
        catch (JsonException) { return null; }
    }

    /// <summary>
    /// Thaws (virDomainFSThaw) until the agent reports "thawed", retrying once a second within
    /// <paramref name="budget"/> (zero: one check and one thaw). Every call is bounded by <see cref="Timeout"/>.
    /// </summary>
    public ThawOutcome EnsureThawed(string uuid, string name, TimeSpan budget)
    {
        var clock = Stopwatch.StartNew();
        var thawedSome = false;
        string? problem = null;
        for (var attempt = 1; ; attempt++)
        {
            var status = FreezeStatus(uuid);
            if (status == "thawed")
            {
                if (thawedSome) GuestAgentLog.Thawed(logger, name, attempt - 1);
                return new ThawOutcome(thawedSome ? ThawState.Thawed : ThawState.NotFrozen, attempt, clock.Elapsed, null);
            }
            problem = status is null ? "the guest agent does not answer guest-fsfreeze-status" : $"guest-fsfreeze-status says '{status}'";
            try { thawedSome |= hypervisor.ThawFileSystems(uuid) > 0; }
            catch (LibvirtException e)
            {
                problem = $"{problem}; virDomainFSThaw: {e.LibvirtMessage}";
                GuestAgentLog.ThawAttemptFailed(logger, name, attempt, e);
            }
            if (clock.Elapsed >= budget)
            {
                // One last look: the thaw above may have been the one that worked.
                if (FreezeStatus(uuid) == "thawed") return new ThawOutcome(thawedSome ? ThawState.Thawed : ThawState.NotFrozen, attempt, clock.Elapsed, null);
                GuestAgentLog.ThawUnconfirmed(logger, name, problem);
                return new ThawOutcome(ThawState.Unconfirmed, attempt, clock.Elapsed, problem);
            }
            Thread.Sleep(RetryDelay);
        }
    }
}
