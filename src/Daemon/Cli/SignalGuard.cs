using System.Runtime.InteropServices;

namespace Backupd.Daemon.Cli;

/// <summary>
/// While a backup runs, SIGINT/SIGTERM/SIGHUP must not end the process: the default would exit with
/// the domain still on its overlay. The guard turns the signal into a cancellation of the copy; the
/// workflow's finally then merges the overlays back and the command exits normally.
/// </summary>
public sealed class SignalGuard : IDisposable
{
    private readonly CancellationTokenSource cts;
    private readonly PosixSignalRegistration[] registrations;

    public SignalGuard(CancellationToken outer)
    {
        cts = CancellationTokenSource.CreateLinkedTokenSource(outer);
        registrations = [.. new[] { PosixSignal.SIGINT, PosixSignal.SIGTERM, PosixSignal.SIGHUP }.Select(s => PosixSignalRegistration.Create(s, OnSignal))];
    }

    public CancellationToken Token => cts.Token;

    /// <summary>The first signal received, if any.</summary>
    public PosixSignal? Received { get; private set; }

    private void OnSignal(PosixSignalContext context)
    {
        context.Cancel = true; // keep the process alive until the overlays are merged back
        Received ??= context.Signal;
        Console.Error.WriteLine($"backupd: {context.Signal} received: stopping the copy (if it is still running) and merging the overlays back");
        cts.Cancel();
    }

    /// <summary>
    /// The stderr note of a run that succeeded although a signal came: it came after the copy, when the point
    /// was already durable, and a commit is finished rather than stopped (docs/cli.md). Null without a signal.
    /// </summary>
    public string? LateSignalNote(string? pointId) => Received is { } s
        ? $"backupd: {s} came after the copy: the commit was finished, restore point {pointId} is complete, exit 0"
        : null;

    public void Dispose()
    {
        foreach (var r in registrations) r.Dispose();
        cts.Dispose();
    }
}
