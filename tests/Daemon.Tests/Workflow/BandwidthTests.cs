using System.Diagnostics;
using Backupd.Daemon.Cli.Commands;
using Backupd.Daemon.Cli;
using Backupd.Daemon.Runs;
using Backupd.Daemon.Scheduling;
using Backupd.Daemon.Tests.Scheduling;
using Backupd.Daemon.Workflow;
using Backupd.Policies.Model;
using CsCheck;
using WorkflowRequest = Backupd.Daemon.Workflow.BackupRequest;

namespace Backupd.Daemon.Tests.Workflow;

/// <summary>The pure token bucket, driven by a fake clock (TimeSpan values passed in).</summary>
public sealed class TokenBucketTests
{
    private const long MiB = 1 << 20;

    [Fact]
    public void Starts_empty_so_the_first_bytes_already_wait()
    {
        var bucket = new TokenBucket(2 * MiB, TimeSpan.Zero);
        Assert.Equal(TimeSpan.FromSeconds(0.5), bucket.Take(MiB, TimeSpan.Zero));
    }

    [Fact]
    public void A_take_larger_than_the_bucket_goes_into_debt_and_the_next_take_pays_for_it()
    {
        var bucket = new TokenBucket(MiB, TimeSpan.Zero);
        Assert.Equal(TimeSpan.FromSeconds(8), bucket.Take(8 * MiB, TimeSpan.Zero));
        // 8 s later the debt is paid; the next MiB costs one more second.
        Assert.Equal(TimeSpan.FromSeconds(1), bucket.Take(MiB, TimeSpan.FromSeconds(8)));
    }

    [Fact]
    public void Idle_time_earns_at_most_one_second_of_burst()
    {
        var bucket = new TokenBucket(MiB, TimeSpan.Zero);
        Assert.Equal(TimeSpan.Zero, bucket.Take(MiB, TimeSpan.FromSeconds(10)));
        Assert.Equal(TimeSpan.FromSeconds(2), bucket.Take(2 * MiB, TimeSpan.FromSeconds(10)));
    }

    [Fact]
    public void A_clock_going_backwards_earns_nothing()
    {
        var bucket = new TokenBucket(MiB, TimeSpan.FromSeconds(5));
        Assert.Equal(TimeSpan.FromSeconds(1), bucket.Take(MiB, TimeSpan.FromSeconds(1)));
    }

    [Fact]
    public void Rates_must_be_positive_and_no_rate_means_no_limiter()
    {
        Assert.Throws<ArgumentOutOfRangeException>(() => new TokenBucket(0, TimeSpan.Zero));
        Assert.Throws<ArgumentOutOfRangeException>(() => new TokenBucket(MiB, TimeSpan.Zero).Take(-1, TimeSpan.Zero));
        Assert.Null(BandwidthLimiter.Create(null));
        Assert.Null(BandwidthLimiter.Create(0));
        Assert.Equal(5 * MiB, BandwidthLimiter.Create(5 * MiB)!.BytesPerSecond);
    }

    [Fact]
    public void A_caller_that_obeys_the_waits_never_beats_the_rate_and_never_lags_it()
    {
        // Random read sizes and random idle pauses: after N bytes the clock is never before N/rate
        // (the bucket starts empty and earns rate*t at most), and never later than N/rate plus the pauses.
        Gen.Select(Gen.Long[1, 64 * MiB], Gen.Select(Gen.Long[0, 16 * MiB], Gen.Double[0, 3]).Array[1, 40]).Sample((rate, steps) =>
        {
            var bucket = new TokenBucket(rate, TimeSpan.Zero);
            var now = TimeSpan.Zero;
            double released = 0, paused = 0;
            foreach (var (bytes, pause) in steps)
            {
                now += TimeSpan.FromSeconds(pause);
                paused += pause;
                now += bucket.Take(bytes, now); // the caller waits, then reads
                released += bytes;
                if (now.TotalSeconds < (released / rate) - 1e-5 || now.TotalSeconds > (released / rate) + paused + 1e-5) return false;
            }
            return true;
        });
    }
}

/// <summary>The limiter on the real clock: the bucket's promise must survive timers that end early.</summary>
public sealed class BandwidthLimiterTests
{
    private const long MiB = 1 << 20;

    [Fact]
    public async Task No_prefix_of_the_reads_passes_sooner_than_its_bytes_over_the_rate()
    {
        // 40 reads of 0.1-2.5 MiB at 200 MiB/s: each waits a few milliseconds, where an early timer shows most.
        const long rate = 200 * MiB;
        var limiter = new BandwidthLimiter(rate);
        var sizes = new Random(7).GetItems([MiB / 10, MiB / 2, MiB, 5 * MiB / 2], 40);
        var clock = Stopwatch.StartNew(); // started before the limiter's own clock (it starts at the first read)
        long released = 0;
        foreach (var bytes in sizes)
        {
            await limiter.WaitAsync(bytes, CancellationToken.None);
            released += bytes;
            var floor = TimeSpan.FromSeconds((double)released / rate);
            Assert.True(clock.Elapsed >= floor, $"{released} bytes at {rate} B/s released after {clock.Elapsed.TotalMilliseconds:F3} ms, before {floor.TotalMilliseconds:F3} ms");
        }
    }
}

/// <summary>Policy and CLI limits reach QEMU's commit (via the fake hypervisor) and the copy's reads (via a real repository).</summary>
[Collection("Faults")]
// Integration: the workflow takes the real host-wide run lock in /run/lock/backupd (root-owned), which a non-root run cannot open.
[Trait("Category", "Integration")]
public sealed class BandwidthPlumbingTests : IDisposable
{
    private const long MiB = 1 << 20;
    private readonly string dir = Directory.CreateTempSubdirectory("bkd-bw-").FullName;

    public void Dispose() => Directory.Delete(dir, recursive: true);

    private WorkflowOptions Defaults => new() { StateDirectory = Path.Combine(dir, "state"), MinimumOverlayFreeBytes = 1, CommitRetryDelay = TimeSpan.Zero };

    private async Task<FakeHypervisor> RunWorkflow(WorkflowOptions options)
    {
        Faults.Spec = null;
        var hv = new FakeHypervisor(dir);
        hv.AddDisk("vda");
        hv.AddDisk("vdb", "raw");
        var result = await new BackupWorkflow(hv, new FakeImages(hv.Calls), new FakeTarget(hv.Calls), options, new ListLogger())
            .RunAsync(new WorkflowRequest(hv.Name, [], [], QuiesceMode.Off), CancellationToken.None);
        Assert.Equal(RunOutcome.Succeeded, result.Outcome);
        return hv;
    }

    [Fact]
    public async Task The_policy_commit_limit_reaches_StartActiveCommit_for_every_disk()
    {
        var policy = TestPolicies.One("name: p\ndomains: [vm1]\nschedule: daily\nrepository: /r\nbandwidth: {copy: 200MiB/s, commit: 100MiB/s}\n");
        var options = BackupSpec.OptionsFor(policy, Defaults);
        Assert.Equal(200 * MiB, options.CopyBandwidth);
        Assert.Equal(100 * MiB, options.CommitBandwidth);
        Assert.Equal(policy.CommitTimeout, options.CommitReadyTimeout);

        var hv = await RunWorkflow(options);

        Assert.Equal(new Dictionary<string, long?> { ["vda"] = 100 * MiB, ["vdb"] = 100 * MiB }, hv.CommitBandwidths);
    }

    [Fact]
    public async Task Without_a_limit_the_commit_is_unlimited()
    {
        var policy = TestPolicies.One("name: p\ndomains: [vm1]\nschedule: daily\nrepository: /r\n");
        var options = BackupSpec.OptionsFor(policy, Defaults);
        Assert.Null(options.CopyBandwidth);

        var hv = await RunWorkflow(options);

        Assert.Equal(new Dictionary<string, long?> { ["vda"] = null, ["vdb"] = null }, hv.CommitBandwidths);
    }

    [Theory]
    [InlineData("50M", 50 * MiB)]
    [InlineData("50MiB/s", 50 * MiB)]
    [InlineData("1G", 1024 * MiB)]
    public void Cli_bandwidth_limits_the_copy_only_and_leaves_the_commit_unlimited(string rate, long expected)
    {
        // A throttled commit keeps the guest on its overlay (1.1 GB of writes at 2 MiB/s: ~9 min), so --bandwidth is the copy's alone.
        var parse = CommandTree.Build().Parse(["backup", "--domain", "vm1", "--to", "/r", "--bandwidth", rate]);
        Assert.Empty(parse.Errors);
        var options = BackupCommand.WithBandwidth(parse, Defaults);
        Assert.Equal(expected, options.CopyBandwidth);
        Assert.Null(options.CommitBandwidth);
    }

    [Fact]
    public async Task Cli_commit_bandwidth_reaches_each_disks_active_commit_and_not_the_copy()
    {
        var parse = CommandTree.Build().Parse(["backup", "--domain", "vm1", "--to", "/r", "--commit-bandwidth", "20M"]);
        Assert.Empty(parse.Errors);
        var options = BackupCommand.WithBandwidth(parse, Defaults);
        Assert.Equal(((long?)null, (long?)(20 * MiB)), (options.CopyBandwidth, options.CommitBandwidth));

        var hv = await RunWorkflow(options);

        Assert.Equal(new Dictionary<string, long?> { ["vda"] = 20 * MiB, ["vdb"] = 20 * MiB }, hv.CommitBandwidths);
    }

    [Fact]
    public void Cli_commit_bandwidth_rejects_bad_rates_naming_the_option()
    {
        var parse = CommandTree.Build().Parse(["backup", "--domain", "vm1", "--to", "/r", "--commit-bandwidth", "100K"]);
        Assert.Contains("--commit-bandwidth expects a rate of at least 1MiB/s", Assert.Single(parse.Errors).Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("fast")]
    [InlineData("512K")]
    [InlineData("-5M")]
    public void Cli_bandwidth_rejects_bad_rates_naming_the_option(string rate)
    {
        var parse = CommandTree.Build().Parse(["backup", "--domain", "vm1", "--to", "/r", "--bandwidth", rate]);
        var error = Assert.Single(parse.Errors);
        Assert.Contains($"--bandwidth expects a rate of at least 1MiB/s like 50M, 50MiB/s or 1GiB/s, got '{rate}'", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Cli_without_bandwidth_leaves_the_options_unlimited()
    {
        var parse = CommandTree.Build().Parse(["backup", "--domain", "vm1", "--to", "/r"]);
        var options = BackupCommand.WithBandwidth(parse, Defaults);
        Assert.Null(options.CopyBandwidth);
        Assert.Null(options.CommitBandwidth);
    }

    private async Task<(StoredFile Stored, TimeSpan Elapsed)> CopyAsync(string source, long? limit)
    {
        using var target = BackupTargets.Open(Path.Combine(dir, "repo-" + Guid.NewGuid().ToString("N")[..8]), limit);
        using var session = target.Begin(Guid.NewGuid().ToString(), "vm1");
        var clock = Stopwatch.StartNew();
        var stored = await session.AddFileAsync("vda.0", new ChainImage(source, "raw", null, new FileInfo(source).Length), null, CancellationToken.None);
        var elapsed = clock.Elapsed;
        session.Commit();
        return (stored, elapsed);
    }

    [Fact]
    public async Task A_limited_copy_of_N_bytes_takes_at_least_N_over_the_limit()
    {
        const long n = 3 * MiB, limit = 2 * MiB;
        var source = Path.Combine(dir, "disk.raw");
        var data = new byte[n];
        Random.Shared.NextBytes(data);
        await File.WriteAllBytesAsync(source, data);

        var (stored, elapsed) = await CopyAsync(source, limit);

        Assert.Equal(n, stored.BytesRead);
        Assert.True(elapsed >= TimeSpan.FromSeconds((double)n / limit), $"{n} bytes at {limit} B/s took only {elapsed}");
    }

    [Fact]
    public async Task Holes_are_not_charged_against_the_limit()
    {
        // 256 MiB virtual with 1 MiB of data: charged by offset it would take 256 s at 1 MiB/s.
        const long size = 256 * MiB, limit = MiB;
        var source = Path.Combine(dir, "sparse.raw");
        using (var f = File.OpenHandle(source, FileMode.CreateNew, FileAccess.Write))
        {
            var data = new byte[MiB];
            Random.Shared.NextBytes(data);
            RandomAccess.Write(f, data, 0);
            RandomAccess.SetLength(f, size);
        }

        var (stored, elapsed) = await CopyAsync(source, limit);

        Assert.Equal(MiB, stored.BytesRead);
        Assert.InRange(elapsed, TimeSpan.FromSeconds(1), TimeSpan.FromSeconds(30));
    }
}
