using System.Net.Sockets;
using System.Text;
using Backupd.Daemon.Hosting;
using Microsoft.Extensions.Hosting.Systemd;

namespace Backupd.Daemon.Tests.Hosting;

/// <summary>sd_notify against a receiver that does not read: the caller (the SIGTERM path) must never wait for it.</summary>
public sealed class NonBlockingNotifierTests
{
    [Fact]
    public async Task A_receiver_that_does_not_read_never_blocks_the_caller_and_later_reads_get_the_datagrams_in_order()
    {
        var dir = Directory.CreateTempSubdirectory("bkd-notify-").FullName;
        try
        {
            var path = Path.Combine(dir, "notify");
            using var receiver = new Socket(AddressFamily.Unix, SocketType.Dgram, ProtocolType.Unspecified);
            receiver.Bind(new UnixDomainSocketEndPoint(path));
            using var notifier = new NonBlockingNotifier(path);
            Assert.True(notifier.IsEnabled);

            // Far more than the socket's queue holds (net.unix.max_dgram_qlen, 10 by default), nothing read meanwhile.
            // The library's blocking SystemdNotifier never returns from this loop; a bound makes that a failure, not a hang.
            var sends = Task.Run(() =>
            {
                for (var i = 0; i < 40; i++) notifier.Notify(new ServiceState($"STATUS=n{i}"));
                notifier.Notify(ServiceState.Stopping);
            });
            Assert.Same(sends, await Task.WhenAny(sends, Task.Delay(TimeSpan.FromSeconds(30))));

            // Read now: what arrives is in the order sent, begins with the first, and the backlog (retried while the
            // queue was full) follows; whatever stayed unsent past the retry window was counted as dropped.
            var received = new List<string>();
            var buffer = new byte[256];
            receiver.ReceiveTimeout = 10_000;
            try
            {
                while (received.LastOrDefault() != "STOPPING=1")
                    received.Add(Encoding.UTF8.GetString(buffer, 0, receiver.Receive(buffer)));
            }
            catch (SocketException) when (notifier.Dropped > 0) { }
            Assert.Equal("STATUS=n0", received[0]);
            var numbers = received.Where(r => r.StartsWith("STATUS=n", StringComparison.Ordinal)).Select(r => int.Parse(r[8..], System.Globalization.CultureInfo.InvariantCulture)).ToList();
            Assert.Equal(numbers.Order(), numbers);
            Assert.Equal(41, received.Count + notifier.Dropped);
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }

    [Fact]
    public void Without_a_receiver_a_notification_is_dropped_not_thrown()
    {
        using var notifier = new NonBlockingNotifier(Path.Combine(Path.GetTempPath(), $"bkd-no-socket-{Guid.NewGuid():N}"));
        notifier.Notify(ServiceState.Ready);
        Assert.Equal(1, notifier.Dropped);
    }
}
