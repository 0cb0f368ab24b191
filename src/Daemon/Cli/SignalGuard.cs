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

    private void OnSignal(PosixSignalContext context)
    {
        context.Cancel = true; // keep the process alive until the overlays are merged back
        Console.Error.WriteLine($"backupd: {context.Signal} received: stopping the copy and merging the overlays back");
        cts.Cancel();
    }

    public void Dispose()
    {
        foreach (var r in registrations) r.Dispose();
        cts.Dispose();
    }
}
