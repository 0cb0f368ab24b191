using System.Collections.Concurrent;
using System.Diagnostics;
using Backupd.Storage.Catalog;

namespace Backupd.Integration.Fixtures;

/// <summary>
/// A `backupd backup --domain` process whose steps a test can catch: the copy is throttled (64 MiB at 8 MiB/s),
/// the guest writes 8 MiB into the overlay during it, and the commit is throttled to 1 MiB/s, so the run spends
/// seconds in each of `copy` and `commit`. Steps are read from the catalog directly (not through a proxy the test may cut).
/// </summary>
internal sealed class SlowCommitRun : IDisposable
{
    public const long MiB = TestVm.MiB;
    public const byte GuestPattern = 0x7c;
    public const long GuestOffset = 16 * MiB, GuestBytes = 8 * MiB;

    private readonly CatalogStore store;
    private readonly Guid uuid;

    public Process Process { get; }
    public ConcurrentQueue<string> Output { get; }

    private SlowCommitRun(CatalogStore store, Guid uuid, Process process, ConcurrentQueue<string> output)
    {
        this.store = store;
        this.uuid = uuid;
        Process = process;
        Output = output;
    }

    /// <summary>A running VM with 64 MiB of data on vda, ready for <see cref="StartAsync"/>.</summary>
    public static async Task<TestVm> CreateVmAsync()
    {
        var vm = await TestVm.CreateAsync(new DiskSpec("vda", SizeBytes: 64 * MiB, FillPattern: null));
        await TestVm.WritePatternAsync(vm.Disk("vda").Path, "qcow2", 0, 64 * MiB, 0x5a);
        await vm.StartAsync();
        return vm;
    }

    /// <summary>
    /// Starts the backup and returns once the guest's writes are in the overlay (the run is in its copy).
    /// QEMU's commit copies up to its 16 MiB buffer at once and sleeps off the rate afterwards: for a commit whose
    /// position moves in steps, write more than that (<paramref name="guestBytes"/>, at most 48 MiB).
    /// </summary>
    public static async Task<SlowCommitRun> StartAsync(TestVm vm, string configPath, string repository, CatalogStore directStore,
        string commitBandwidth = "1MiB/s", long guestBytes = GuestBytes, string copyBandwidth = "8MiB/s")
    {
        var process = BackupdProcess.StartCollecting(null, out var output, "--config", configPath, "backup", "--domain", vm.Name, "--to", repository,
            "--bandwidth", copyBandwidth, "--commit-bandwidth", commitBandwidth, "--json");
        var run = new SlowCommitRun(directStore, Guid.Parse(vm.Uuid), process, output);
        await run.WaitForAsync(r => r is { Step: "copy", ProgressBytes: > 0 }, "the copy step");
        await vm.WriteAsGuestAsync("vda", GuestOffset, GuestPattern, guestBytes); // lands in the overlay: the commit has that much to merge
        return run;
    }

    /// <summary>Waits until the domain's only run matches (the process must still be running).</summary>
    public async Task<RunRow> WaitForAsync(Func<RunRow?, bool> condition, string what)
    {
        var deadline = DateTime.UtcNow.AddSeconds(120);
        while (true)
        {
            var run = (await store.ListRunsAsync(uuid, 10, CancellationToken.None)).SingleOrDefault();
            if (condition(run)) return run!;
            if (Process.HasExited) Assert.Fail($"the backup exited ({Process.ExitCode}) before {what}; output:\n{string.Join('\n', Output)}");
            if (DateTime.UtcNow > deadline) Assert.Fail($"the run did not reach {what} in 120 s; output:\n{string.Join('\n', Output)}");
            await Task.Delay(100);
        }
    }

    /// <summary>Waits for the process to end (at most 3 minutes) and returns its exit code.</summary>
    public async Task<int> ExitCodeAsync()
    {
        using var timeout = new CancellationTokenSource(TimeSpan.FromMinutes(3));
        try { await Process.WaitForExitAsync(timeout.Token); }
        catch (OperationCanceledException) { Assert.Fail($"the backup did not end in 3 minutes; output:\n{string.Join('\n', Output)}"); }
        Process.WaitForExit();
        return Process.ExitCode;
    }

    public string AllOutput => string.Join('\n', Output);

    public void Dispose()
    {
        if (!Process.HasExited) Process.Kill(entireProcessTree: true);
        Process.Dispose();
    }
}
