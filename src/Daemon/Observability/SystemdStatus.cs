using Backupd.Daemon.Runs;
using Microsoft.Extensions.Hosting.Systemd;

namespace Backupd.Daemon.Observability;

/// <summary>
/// systemd STATUS= with the running jobs ("2 policies scheduled; running: web1 copy 42%, db commit 10%"), sent when
/// a job starts, ends or its whole percentage changes, at most once a second, so `systemctl status` shows them.
/// Sent from a background task, latest text wins: the notify socket is a blocking datagram socket, and a receiver
/// that does not read (a full queue) must never stall the backup that reports its progress.
/// </summary>
public sealed class SystemdStatus(RunTracker tracker, PolicyView policies, TimeProvider clock, ISystemdNotifier? notifier = null) : IRunObserver
{
    private static readonly TimeSpan MinGap = TimeSpan.FromSeconds(1);
    private readonly Lock _lock = new();
    private string? _sent;
    private DateTimeOffset _sentAt;
    private string? _pending;
    private bool _sending;

    public static string Text(int policies, IReadOnlyList<RunningJob> jobs) =>
        $"{policies} policies scheduled" + (jobs.Count == 0 ? "" :
            "; running: " + string.Join(", ", jobs.Select(j => $"{j.Run.Domain} {j.Step}{(j.Percent is { } p ? $" {p:0}%" : "")}")));

    public void Started(ObservedRun run) => Send(force: true);
    public void Progress(ObservedRun run, RunProgress progress) => Send(force: false);
    public void Finished(ObservedRun run, RunEnd outcome) => Send(force: true);
    public void Verified(string domain, string? policy, string pointId, bool ok, string detail) { }

    private void Send(bool force)
    {
        if (notifier is null || !notifier.IsEnabled) return;
        var text = Text(policies.Active.Count, tracker.Running);
        lock (_lock)
        {
            if (text == _sent || (!force && clock.GetUtcNow() - _sentAt < MinGap)) return;
            _sent = text;
            _sentAt = clock.GetUtcNow();
            _pending = text;
            if (_sending) return; // the running sender picks the newest text up
            _sending = true;
        }
        _ = Task.Run(SendPending);
    }

    private void SendPending()
    {
        while (true)
        {
            string text;
            lock (_lock)
            {
                if (_pending is null) { _sending = false; return; }
                text = _pending;
                _pending = null;
            }
            notifier!.Notify(new ServiceState("STATUS=" + text));
        }
    }
}
