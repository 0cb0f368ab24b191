using System.Runtime.InteropServices;
using Backupd.Daemon.ChangedBlocks.Native;
using Backupd.Storage.ChangedBlocks;

namespace Backupd.Daemon.ChangedBlocks;

/// <summary>
/// Reads the dirty map of bitmap NAME from an NBD export through libnbd: meta context <c>qemu:dirty-bitmap:NAME</c>,
/// block status over the whole disk in bounded requests (servers need not accept 4 GiB or more at once). The extents
/// must tile the disk from 0 without gaps; the last one of a reply may reach past the request and is clipped.
/// </summary>
internal static unsafe class DirtyMapReader
{
    /// <summary>Bytes per block-status request.</summary>
    public const long RequestBytes = 1L << 30;

    private const int EPROTO = 71;

    public static DirtyClusters Read(string socketPath, string bitmapName, CancellationToken ct)
    {
        var context = "qemu:dirty-bitmap:" + bitmapName;
        using var h = NbdErrors.Check(Interop.nbd_create());
        NbdErrors.Check(Interop.nbd_set_handle_name(h, "backupd"));
        NbdErrors.Check(Interop.nbd_add_meta_context(h, context));
        NbdErrors.Check(Interop.nbd_connect_unix(h, socketPath));
        if (NbdErrors.Check(Interop.nbd_can_meta_context(h, context)) != 1)
        {
            throw new IOException($"the NBD server at {socketPath} does not offer context {context}");
        }
        var size = NbdErrors.Check(Interop.nbd_get_size(h));
        var collector = new Collector(context);
        var self = GCHandle.Alloc(collector);
        try
        {
            while (collector.Map.Next < size)
            {
                ct.ThrowIfCancellationRequested();
                var offset = collector.Map.Next;
                var count = Math.Min(RequestBytes, size - offset);
                collector.RequestEnd = offset + count;
                var callback = new Interop.NbdExtentCallback { Callback = &OnExtents, UserData = GCHandle.ToIntPtr(self), Free = null };
                var result = Interop.nbd_block_status(h, (ulong)count, (ulong)offset, callback, 0);
                if (collector.Error is not null)
                {
                    throw collector.Error;
                }
                NbdErrors.Check(result, "nbd_block_status");
                if (collector.Map.Next == offset)
                {
                    throw new IOException($"block status of {context} at offset {offset} returned no extent");
                }
            }
            Interop.nbd_shutdown(h, 0); // a clean disconnect: qemu-nbd (not --persistent) then exits by itself
        }
        finally
        {
            self.Free();
        }
        return collector.Map.Build(size);
    }

    [UnmanagedCallersOnly]
    private static int OnExtents(IntPtr userData, byte* metacontext, ulong offset, uint* entries, nuint count, int* error)
    {
        var c = (Collector)GCHandle.FromIntPtr(userData).Target!;
        try
        {
            if (Marshal.PtrToStringUTF8((IntPtr)metacontext) != c.Context)
            {
                return 0;
            }
            var pos = (long)offset;
            if (pos > c.Map.Next)
            {
                throw new IOException($"block status of {c.Context} skipped [{c.Map.Next}, {pos})");
            }
            for (nuint i = 0; i + 1 < count && pos < c.RequestEnd; i += 2)
            {
                var end = Math.Min(pos + entries[i], c.RequestEnd);
                if (end > c.Map.Next)
                {
                    c.Map.Add(c.Map.Next, end - c.Map.Next, (entries[i + 1] & Interop.NBD_STATE_DIRTY) != 0);
                }
                pos += entries[i];
            }
            return 0;
        }
        catch (Exception e)
        {
            c.Error = e as IOException ?? new IOException($"reading the dirty map failed: {e.Message}", e);
            *error = EPROTO;
            return -1;
        }
    }

    private sealed class Collector(string context)
    {
        public string Context { get; } = context;
        public DirtyClusters.Builder Map { get; } = new();
        public long RequestEnd { get; set; }
        public IOException? Error { get; set; }
    }
}
