using System.Collections.Concurrent;
using System.Runtime.InteropServices;
using Backupd.Daemon.Libvirt.Native;

namespace Backupd.Daemon.Libvirt;

/// <summary>
/// Receives BLOCK_JOB_2 events on the event-loop thread and hands them to waiters. The callback does
/// no blocking libvirt call: it reads the domain's UUID (local data) and completes a task.
/// </summary>
internal sealed unsafe class BlockJobEvents
{
    /// <summary>virConnectDomainEventBlockJobStatus.</summary>
    public const int Completed = 0, Failed = 1, Canceled = 2, Ready = 3;

    private readonly ConcurrentDictionary<(string Uuid, string Target), TaskCompletionSource<int>> signals = new();

    /// <summary>A task that completes with the next event's status for this disk.</summary>
    public Task<int> Next(string uuid, string target) =>
        signals.GetOrAdd((uuid, target), _ => new TaskCompletionSource<int>(TaskCreationOptions.RunContinuationsAsynchronously)).Task;

    private void Raise(string uuid, string target, int status)
    {
        if (signals.TryRemove((uuid, target), out var tcs)) tcs.TrySetResult(status);
    }

    /// <summary>Registers for every domain of <paramref name="conn"/>; returns the callback id.</summary>
    public int Register(ConnectionHandle conn)
    {
        var self = GCHandle.Alloc(this);
        delegate* unmanaged<IntPtr, IntPtr, byte*, int, int, void*, void> callback = &OnBlockJob;
        var id = Interop.virConnectDomainEventRegisterAny(conn, IntPtr.Zero, Interop.VIR_DOMAIN_EVENT_ID_BLOCK_JOB_2,
            callback, (void*)GCHandle.ToIntPtr(self), &FreeOpaque);
        if (id < 0)
        {
            self.Free();
            throw LibvirtErrors.Last("virConnectDomainEventRegisterAny");
        }
        return id;
    }

    [UnmanagedCallersOnly]
    private static void OnBlockJob(IntPtr conn, IntPtr dom, byte* disk, int type, int status, void* opaque)
    {
        try
        {
            var self = (BlockJobEvents?)GCHandle.FromIntPtr((IntPtr)opaque).Target;
            if (self is null || disk == null) return;
            var buf = stackalloc byte[Interop.VIR_UUID_STRING_BUFLEN];
            if (Interop.virDomainGetUUIDStringRaw(dom, buf) < 0) return;
            var uuid = Marshal.PtrToStringUTF8((IntPtr)buf)!;
            var target = Marshal.PtrToStringUTF8((IntPtr)disk)!;
            self.Raise(uuid, target, status);
        }
        catch (Exception)
        {
            // Never let an exception cross into libvirt's event loop; polling still sees the state.
        }
    }

    [UnmanagedCallersOnly]
    private static void FreeOpaque(void* opaque) => GCHandle.FromIntPtr((IntPtr)opaque).Free();
}
