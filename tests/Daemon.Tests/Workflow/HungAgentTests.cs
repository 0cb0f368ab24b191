using Backupd.Daemon.GuestAgent;
using Backupd.Daemon.Libvirt;
using Backupd.Daemon.Workflow;
using Backupd.Policies.Model;

namespace Backupd.Daemon.Tests.Workflow;

/// <summary>Issue 11: a connected channel whose agent does not answer (SIGSTOPped qemu-ga), and a freeze that outlives a failed quiesce.</summary>
[Collection("Faults")]
public sealed class HungAgentTests : IDisposable
{
    private readonly string dir = Directory.CreateTempSubdirectory("bkd-agent-").FullName;
    private readonly FakeHypervisor hv;
    private readonly ListLogger log = new();

    public HungAgentTests()
    {
        hv = new FakeHypervisor(dir) { AgentConnected = true };
        hv.AddDisk("vda");
        Faults.Spec = null;
    }

    public void Dispose() => Directory.Delete(dir, recursive: true);

    private WorkflowOptions Options => new()
    {
        StateDirectory = Path.Combine(dir, "state"),
        MinimumOverlayFreeBytes = 1,
        CommitRetryDelay = TimeSpan.Zero,
        AgentTimeout = TimeSpan.FromSeconds(3),
        ThawBudget = TimeSpan.FromSeconds(2),
    };

    private Task<BackupResult> Run(QuiesceMode quiesce) =>
        new BackupWorkflow(hv, new FakeImages(hv.Calls), new FakeTarget(hv.Calls), Options, log).RunAsync(new BackupRequest(hv.Name, [], [], quiesce), CancellationToken.None);

    private IEnumerable<string> Snapshots => hv.Calls.Where(c => c.StartsWith("snapshot", StringComparison.Ordinal));

    [Fact]
    public async Task Required_refuses_before_any_snapshot_when_the_agent_does_not_answer_its_ping()
    {
        hv.AgentHung = true;

        var refused = await Assert.ThrowsAsync<BackupRefusedException>(() => Run(QuiesceMode.Required));

        Assert.Equal(RefusalKind.QuiesceUnavailable, refused.Kind);
        Assert.Contains("did not answer a guest-ping within 3 s", refused.Message, StringComparison.Ordinal);
        Assert.Empty(Snapshots);
        Assert.Equal(TimeSpan.FromSeconds(3), hv.AgentTimeout); // bounded before the ping
        Assert.True(hv.Calls.IndexOf("agent-timeout 3") < hv.Calls.IndexOf("ping"));
        Assert.Empty(new RunJournal(Options.StateDirectory).OpenEntries());
    }

    [Fact]
    public async Task Preferred_snapshots_crash_consistent_at_once_without_trying_to_quiesce()
    {
        hv.AgentHung = true;

        var result = await Run(QuiesceMode.Preferred);

        Assert.Equal(["snapshot"], Snapshots);
        Assert.Equal(Consistency.CrashConsistent, result.Consistency);
        Assert.Equal(RunOutcome.Succeeded, result.Outcome);
        Assert.Equal("crash-consistent", result.Quiesce!.Outcome);
        Assert.Contains("guest-ping", result.Quiesce.Reason, StringComparison.Ordinal);
        Assert.True(result.Quiesce.Noteworthy);
    }

    [Fact]
    public async Task A_freeze_left_by_a_failed_quiesce_is_thawed_and_recorded()
    {
        // The quiesced snapshot times out, but the freeze ran in the guest anyway.
        hv.SnapshotFails = quiesce =>
        {
            if (!quiesce) return null;
            hv.Frozen = true;
            return new LibvirtException("virDomainSnapshotCreateXML", 68, 10, "Guest agent is not responding: timed out");
        };

        var result = await Run(QuiesceMode.Preferred);

        Assert.False(hv.Frozen);
        Assert.Contains("thaw", hv.Calls);
        Assert.True(hv.Calls.IndexOf("thaw") < hv.Calls.IndexOf("snapshot")); // thawed before the fallback snapshot
        Assert.Equal(Consistency.CrashConsistent, result.Consistency);
        Assert.Equal("thawed", result.Quiesce!.Thaw);
        Assert.Contains("\"thaw\":\"thawed\"", result.Quiesce.ToJson(), StringComparison.Ordinal);
        Assert.Null(new ThawPending(Options.StateDirectory).Find(hv.Uuid));
    }

    [Fact]
    public async Task An_unconfirmed_thaw_fails_required_stays_pending_and_recover_thaws_once_the_agent_answers()
    {
        hv.SnapshotFails = quiesce =>
        {
            if (!quiesce) return null;
            hv.AgentHung = true; // hangs in the middle of the freeze
            return new LibvirtException("virDomainSnapshotCreateXML", 68, 10, "Guest agent is not responding: timed out");
        };

        var clock = System.Diagnostics.Stopwatch.StartNew();
        var result = await Run(QuiesceMode.Required);

        Assert.Equal(RunOutcome.Failed, result.Outcome);
        Assert.Equal("failed", result.Quiesce!.Outcome);
        Assert.StartsWith("unconfirmed", result.Quiesce.Thaw, StringComparison.Ordinal);
        Assert.False(result.Quiesce.Ok);
        Assert.InRange(clock.Elapsed, TimeSpan.Zero, TimeSpan.FromSeconds(10)); // the thaw budget, not forever
        var pending = new ThawPending(Options.StateDirectory);
        Assert.Equal(result.RunId, pending.Find(hv.Uuid)!.RunId);

        // The agent wakes and runs the freeze it had queued; recover thaws.
        hv.AgentHung = false;
        hv.Frozen = true;
        var report = await new Recovery(hv, new FakeImages(hv.Calls), Options, log).RecoverAllAsync(dryRun: false, CancellationToken.None);

        Assert.False(hv.Frozen);
        Assert.Contains(report.Actions, a => a.Done && a.Action.Contains("thawed", StringComparison.Ordinal));
        Assert.Null(pending.Find(hv.Uuid));
    }

    [Fact]
    public void Thaw_retries_until_the_agent_reports_thawed()
    {
        hv.Frozen = true;
        hv.ThawFailures = 2;

        var outcome = new AgentGuard(hv, TimeSpan.FromSeconds(1), log).EnsureThawed(hv.Uuid, hv.Name, TimeSpan.FromSeconds(10));

        Assert.Equal(ThawState.Thawed, outcome.State);
        Assert.Equal(4, outcome.Attempts); // frozen, frozen, frozen (thaw works), thawed
        Assert.False(hv.Frozen);
    }
}
