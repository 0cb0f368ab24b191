using Backupd.Daemon.Libvirt.Native;

namespace Backupd.Daemon.Libvirt;

/// <summary>
/// libvirt's default event loop on one dedicated background thread. Must be registered before any
/// connection that wants events is opened. A 1 s no-op timer keeps the loop waking up so the
/// thread never sleeps forever inside libvirt.
/// </summary>
internal static unsafe class LibvirtEventLoop
{
    private static readonly Lock Gate = new();
    private static Thread? thread;

    public static void EnsureStarted()
    {
        lock (Gate)
        {
            if (thread is not null) return;
            LibvirtErrors.SilenceDefaultPrinting();
            LibvirtErrors.Check(Interop.virEventRegisterDefaultImpl());
            LibvirtErrors.Check(Interop.virEventAddTimeout(1000, &Tick, null, null));
            thread = new Thread(Run) { IsBackground = true, Name = "libvirt-events" };
            thread.Start();
        }
    }

    private static void Run()
    {
        while (true)
        {
            if (Interop.virEventRunDefaultImpl() < 0)
            {
                // Nothing useful to do with the error on this thread; avoid a busy loop.
                Interop.virResetLastError();
                Thread.Sleep(100);
            }
        }
    }

    [System.Runtime.InteropServices.UnmanagedCallersOnly]
    private static void Tick(int timer, void* opaque) { }
}
