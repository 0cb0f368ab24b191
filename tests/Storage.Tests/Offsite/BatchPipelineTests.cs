using Backupd.Storage.Offsite;

namespace Backupd.Storage.Tests.Offsite;

/// <summary>The copy's pipeline: ordered steps see items in submission order, and no more than its capacity is ever held.</summary>
public sealed class BatchPipelineTests
{
    private sealed class Item(int seq)
    {
        public int Seq { get; } = seq;
        public int Work { get; set; }
    }

    [Fact]
    public void Ordered_steps_see_every_item_in_submission_order_while_parallel_steps_finish_out_of_order()
    {
        const int capacity = 5;
        var asked = new List<int>();
        var sent = new List<int>();
        var held = 0;
        var mostHeld = 0;
        var finishedOutOfOrder = false;
        var lastParallel = -1;
        var random = new Random(7);
        var delays = Enumerable.Range(0, 200).Select(_ => random.Next(0, 3)).ToArray();
        using var pipeline = new BatchPipeline<Item>(
        [
            new("work", false, i =>
            {
                Thread.Sleep(delays[i.Seq]); // uneven work: later items often overtake earlier ones
                i.Work = i.Seq * 2;
                lock (asked)
                {
                    finishedOutOfOrder |= i.Seq < lastParallel;
                    lastParallel = Math.Max(lastParallel, i.Seq);
                }
            }),
            new("ask", true, i => asked.Add(i.Seq)),
            new("seal", false, i => Thread.Sleep(delays[199 - i.Seq])),
            new("send", true, i =>
            {
                Assert.Equal(i.Seq * 2, i.Work);
                sent.Add(i.Seq);
                Interlocked.Decrement(ref held);
            }),
        ], workers: 4, capacity: capacity, CancellationToken.None);
        for (var n = 0; n < 200; n++)
        {
            var now = Interlocked.Increment(ref held); // counted before Submit returns: Submit waits for room
            pipeline.Submit(new Item(n));
            lock (asked)
            {
                mostHeld = Math.Max(mostHeld, now);
            }
        }
        pipeline.Complete();
        Assert.Equal(Enumerable.Range(0, 200), asked);
        Assert.Equal(Enumerable.Range(0, 200), sent);
        Assert.True(finishedOutOfOrder, "the test's uneven delays should let a parallel step finish items out of order");
        Assert.InRange(pipeline.MaxInFlight, 2, capacity);
        Assert.InRange(mostHeld, 2, capacity + 1); // +1: the item being submitted, counted before Submit made room
        Assert.Contains(pipeline.Busy, b => b.Step == "work" && b.Busy > TimeSpan.Zero);
    }

    [Fact]
    public void The_first_failure_of_a_step_stops_the_pipeline_and_is_thrown_to_the_producer()
    {
        var sent = new List<int>();
        using var pipeline = new BatchPipeline<Item>(
        [
            new("work", false, i =>
            {
                if (i.Seq == 3)
                {
                    throw new IOException("connection lost (test)");
                }
            }),
            new("send", true, i => sent.Add(i.Seq)),
        ], workers: 2, capacity: 3, CancellationToken.None);
        var e = Assert.Throws<IOException>(() =>
        {
            for (var n = 0; n < 1000; n++)
            {
                pipeline.Submit(new Item(n));
            }
            pipeline.Complete();
        });
        Assert.Equal("connection lost (test)", e.Message);
        Assert.DoesNotContain(3, sent);
        Assert.Equal(Enumerable.Range(0, sent.Count), sent); // nothing after the failed item overtook it
        Assert.True(sent.Count < 1000);
    }

    [Fact]
    public void Cancelling_stops_a_full_pipeline()
    {
        using var cts = new CancellationTokenSource();
        using var gate = new ManualResetEventSlim();
        using var pipeline = new BatchPipeline<Item>([new("stuck", true, _ => gate.Wait(cts.Token))], workers: 1, capacity: 2, cts.Token);
        pipeline.Submit(new Item(0));
        pipeline.Submit(new Item(1));
        cts.CancelAfter(100);
        Assert.ThrowsAny<OperationCanceledException>(() => pipeline.Submit(new Item(2)));
    }
}
