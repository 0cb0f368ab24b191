using System.Collections.Concurrent;
using Backupd.Daemon.Images;
using Backupd.Daemon.Libvirt;
using Backupd.Daemon.Workflow;
using Backupd.Integration.Fixtures;
using Microsoft.Extensions.Logging;

namespace Backupd.Integration;

/// <summary>
/// Tests that cut this test process's libvirt connections. Every other libvirt test in the process
/// shares those connections, so xunit runs this collection alone, after the parallel ones.
/// </summary>
[CollectionDefinition(Name, DisableParallelization = true)]
[Trait("Category", "Integration")]
public sealed class ConnectionDisruptingTests
{
    public const string Name = "libvirt connection disrupting";
}

/// <summary>
/// The client's side of a libvirtd restart during a backup: the server closes our connection (EOF),
/// events that fire meanwhile are lost, and the workflow must reconnect, re-query and still pivot
/// back. The server side closes the connection with `virt-admin client-disconnect` for exactly this
/// process's clients: the same EOF a restart gives, without stopping the shared libvirtd (QEMU keeps
/// running and committing either way; see docs/workflow.md).
/// </summary>
[Collection(ConnectionDisruptingTests.Name)]
[Trait("Category", "Integration")]
public sealed class LibvirtReconnectTests : IDisposable
{
    private const long MiB = TestVm.MiB;
    private readonly string work = Directory.CreateTempSubdirectory("bkd-reconnect-").FullName;
    private string Repository => Path.Combine(work, "repo");
    private WorkflowOptions Options => new() { StateDirectory = Path.Combine(work, "state"), MinimumOverlayFreeBytes = 64 * MiB };

    public void Dispose() => Directory.Delete(work, recursive: true);

    /// <summary>Closes, from the server side, every libvirtd client connection this process holds; returns how many.</summary>
    private static async Task<int> DisconnectThisProcessAsync()
    {
        var list = await Tools.RunAsync("virt-admin", "srv-clients-list", "libvirtd");
        var ids = list.Split('\n').Select(l => l.Trim().Split(' ', StringSplitOptions.RemoveEmptyEntries))
            .Where(f => f.Length > 0 && long.TryParse(f[0], out _)).Select(f => f[0]).ToList();
        var closed = 0;
        foreach (var id in ids)
        {
            var info = await Tools.TryRunAsync("virt-admin", "client-info", "libvirtd", id);
            if (info.ExitCode != 0) continue; // gone meanwhile
            var pid = info.Stdout.Split('\n').Select(l => l.Split(':', 2))
                .FirstOrDefault(kv => kv.Length == 2 && kv[0].Trim() == "unix_process_id")?[1].Trim();
            if (pid != Environment.ProcessId.ToString(System.Globalization.CultureInfo.InvariantCulture)) continue;
            await Tools.RunAsync("virt-admin", "client-disconnect", "libvirtd", id);
            closed++;
        }
        return closed;
    }

    /// <summary>The run succeeded, vda is back on its base everywhere, and the guest's write is in the guest view and then in the base file.</summary>
    private static async Task AssertPivotedBackWithWriteAsync(TestVm vm, BackupResult result, long offset, long length, byte pattern)
    {
        Assert.True(result.Outcome == RunOutcome.Succeeded, $"outcome {result.Outcome}: {result.Error} {string.Join("; ", result.Disks.Select(d => d.Problem))}");
        await AssertBackOnBaseAsync(vm, "vda");
        Assert.True(await vm.GuestReadMatchesAsync("vda", offset, length, pattern));
        await vm.DestroyAsync();
        Assert.True(await TestVm.ImageMatchesAsync(vm.Disk("vda").Path, "qcow2", offset, length, pattern));
    }

    private static async Task AssertBackOnBaseAsync(TestVm vm, string target)
    {
        Assert.Equal(vm.Disk(target).Path, await vm.ActiveSourceAsync(target));
        Assert.Equal(vm.Disk(target).Path, await vm.ActiveSourceAsync(target, inactive: true));
        Assert.DoesNotContain(".backupd-", await vm.LiveXmlAsync(), StringComparison.Ordinal);
        Assert.DoesNotContain(".backupd-", await vm.InactiveXmlAsync(), StringComparison.Ordinal);
        Assert.DoesNotContain(Directory.EnumerateFiles(vm.Directory), OverlayNaming.IsOverlay);
    }

    private readonly ProblemLog log = new();

    private async Task<BackupResult> BackupAsync(TestVm vm, IHypervisor hypervisor, IBackupTarget target)
    {
        var workflow = new BackupWorkflow(hypervisor, new QemuImg(), target, Options, log);
        return await workflow.RunAsync(new BackupRequest(vm.Name, [], []), CancellationToken.None);
    }

    /// <summary>A clean reconnect needs no failed attempt: no warning or error was logged.</summary>
    private void AssertNothingFailed() =>
        Assert.True(log.Problems.IsEmpty, "warnings/errors logged: " + string.Join(" | ", log.Problems));

    private sealed class ProblemLog : ILogger
    {
        public ConcurrentQueue<string> Problems { get; } = new();
        public IDisposable? BeginScope<TState>(TState state) where TState : notnull => null;
        public bool IsEnabled(LogLevel logLevel) => true;
        public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter)
        {
            if (logLevel >= LogLevel.Warning) Problems.Enqueue(formatter(state, exception));
        }
    }

    [Fact]
    public async Task Connection_closed_during_the_copy_reconnects_and_pivots_back()
    {
        await Requirements.LibvirtAndQemuAsync();
        await using var vm = await TestVm.CreateAsync(new DiskSpec("vda", FillPattern: 0x11));
        await vm.StartAsync();
        using var hypervisor = LibvirtHypervisor.Open("qemu:///system");
        var closed = 0;
        using var repository = BackupTargets.Open(Repository);
        var hooked = new HookedTarget(repository)
        {
            BeforeFirstFile = async () =>
            {
                await vm.WriteAsGuestAsync("vda", 0, 0xab, MiB);
                closed = await DisconnectThisProcessAsync();
            },
        };

        var result = await BackupAsync(vm, hypervisor, hooked);

        Assert.True(closed >= 1, "the test must have closed at least one connection of this process");
        AssertNothingFailed();
        await AssertPivotedBackWithWriteAsync(vm, result, 0, MiB, 0xab);
    }

    [Fact]
    public async Task Connection_closed_while_waiting_for_the_commit_loses_the_ready_event_and_still_pivots_back()
    {
        await Requirements.LibvirtAndQemuAsync();
        await using var vm = await TestVm.CreateAsync(new DiskSpec("vda", FillPattern: 0x11));
        await vm.StartAsync();
        using var inner = LibvirtHypervisor.Open("qemu:///system");
        var hypervisor = new CutBeforeReadyWait(inner, vm, DisconnectThisProcessAsync);
        using var repository = BackupTargets.Open(Repository);
        var hooked = new HookedTarget(repository) { BeforeFirstFile = () => vm.WriteAsGuestAsync("vda", 4 * MiB, 0xcd, 4 * MiB) };

        var result = await BackupAsync(vm, hypervisor, hooked);

        Assert.True(hypervisor.Closed >= 1, "the test must have closed the connection during the commit wait");
        Assert.True(hypervisor.ReadyWhileDisconnected, "the job must have become ready while the connection was down (its event lost)");
        AssertNothingFailed();
        await AssertPivotedBackWithWriteAsync(vm, result, 4 * MiB, 4 * MiB, 0xcd);
    }

    [Fact]
    public async Task Libvirtd_away_for_ten_seconds_during_the_commit_wait_is_waited_for_and_the_disk_pivots_back()
    {
        await Requirements.LibvirtAndQemuAsync();
        await using var vm = await TestVm.CreateAsync(new DiskSpec("vda", FillPattern: 0x11));
        await vm.StartAsync();
        using var proxy = new LibvirtSocketProxy();
        proxy.Start();
        using var inner = LibvirtHypervisor.Open(proxy.Uri);
        var downtime = TimeSpan.FromSeconds(10);
        Task? back = null;
        var hypervisor = new CutBeforeReadyWait(inner, vm, () =>
        {
            proxy.Stop(); // the client sees what a libvirtd restart looks like: EOF, then refused
            back = Task.Run(async () =>
            {
                await Task.Delay(downtime);
                proxy.Start();
            });
            return Task.FromResult(1);
        });
        using var repository = BackupTargets.Open(Repository);
        var hooked = new HookedTarget(repository) { BeforeFirstFile = () => vm.WriteAsGuestAsync("vda", 4 * MiB, 0xcd, 4 * MiB) };

        var result = await BackupAsync(vm, hypervisor, hooked);

        Assert.NotNull(back);
        await back;
        Assert.True(hypervisor.ReadyWhileDisconnected, "the job must have become ready while libvirtd was unreachable");
        Assert.True(result.Disks[0].CommitTime >= downtime - TimeSpan.FromSeconds(1), $"commit took {result.Disks[0].CommitTime}: it cannot have finished while libvirtd was away");
        AssertNothingFailed(); // waited for libvirtd instead of failing attempts
        await AssertPivotedBackWithWriteAsync(vm, result, 4 * MiB, 4 * MiB, 0xcd);
    }

    /// <summary>
    /// On the first wait for READY (the active commit is running), closes this process's connections and
    /// waits until libvirt shows the job ready, so the READY event went to a dead connection.
    /// </summary>
    private sealed class CutBeforeReadyWait(LibvirtHypervisor inner, TestVm vm, Func<Task<int>> cut) : IHypervisor
    {
        public int Closed { get; private set; }
        public bool ReadyWhileDisconnected { get; private set; }

        public async Task<BlockJobOutcome> WaitForBlockJobAsync(string uuid, string target, BlockJobGoal goal, TimeSpan timeout)
        {
            if (goal == BlockJobGoal.Ready && Closed == 0)
            {
                Closed = await cut();
                // By deadline, not by a count of polls: each poll is a `virsh dumpxml`, slow on a loaded box.
                var deadline = DateTime.UtcNow.AddSeconds(60);
                while (!ReadyWhileDisconnected && DateTime.UtcNow < deadline)
                {
                    ReadyWhileDisconnected = (await vm.LiveXmlAsync()).Contains("ready='yes'", StringComparison.Ordinal);
                    if (!ReadyWhileDisconnected) await Task.Delay(100);
                }
            }
            return await inner.WaitForBlockJobAsync(uuid, target, goal, timeout);
        }

        public DomainInfo? FindDomain(string nameOrUuid) => inner.FindDomain(nameOrUuid);
        public IReadOnlyList<DomainInfo> ListDomains() => inner.ListDomains();
        public string GetXml(string uuid, DomainXmlKind kind) => inner.GetXml(uuid, kind);
        public void DefineXml(string xml) => inner.DefineXml(xml);
        public BlockSizes GetBlockSizes(string uuid, string target) => inner.GetBlockSizes(uuid, target);
        public string GetHostEmulator(string? virtType, string? arch, string? machine) => inner.GetHostEmulator(virtType, arch, machine);
        public void CreateDiskOnlySnapshot(string uuid, string snapshotXml, bool quiesce) => inner.CreateDiskOnlySnapshot(uuid, snapshotXml, quiesce);
        public void StartActiveCommit(string uuid, string target, long? bytesPerSecond = null) => inner.StartActiveCommit(uuid, target, bytesPerSecond);
        public BlockJobStatus? GetBlockJob(string uuid, string target) => inner.GetBlockJob(uuid, target);
        public void Pivot(string uuid, string target) => inner.Pivot(uuid, target);
        public void AbortBlockJob(string uuid, string target) => inner.AbortBlockJob(uuid, target);
        public bool PingAgent(string uuid, TimeSpan timeout) => inner.PingAgent(uuid, timeout);
        public void SetAgentResponseTimeout(string uuid, TimeSpan timeout) => inner.SetAgentResponseTimeout(uuid, timeout);
        public int ThawFileSystems(string uuid) => inner.ThawFileSystems(uuid);
        public string? AgentCommand(string uuid, string command, TimeSpan timeout) => inner.AgentCommand(uuid, command, timeout);
        // Checkpoints too: changed-block tracking is on by default, and this wrapper must not turn it into a warning.
        public IReadOnlyList<CheckpointInfo> ListCheckpoints(string uuid) => ((IHypervisor)inner).ListCheckpoints(uuid);
        public void CreateCheckpoint(string uuid, string checkpointXml) => ((IHypervisor)inner).CreateCheckpoint(uuid, checkpointXml);
        public bool DeleteCheckpoint(string uuid, string name, bool metadataOnly) => ((IHypervisor)inner).DeleteCheckpoint(uuid, name, metadataOnly);
        public void Dispose() { }
    }
}
