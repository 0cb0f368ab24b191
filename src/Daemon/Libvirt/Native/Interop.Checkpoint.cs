using System.Runtime.InteropServices;

namespace Backupd.Daemon.Libvirt.Native;

/// <summary>virDomainCheckpoint* entry points (libvirt-domain-checkpoint.h): the persistent dirty bitmaps of changed-block tracking.</summary>
internal static unsafe partial class Interop
{
    /// <summary>virDomainCheckpointDeleteFlags. METADATA_ONLY: for a checkpoint whose bitmap is gone (a QEMU crash, a restore).</summary>
    internal const uint VIR_DOMAIN_CHECKPOINT_DELETE_METADATA_ONLY = 2;

    /// <summary>virDomainCheckpointXMLFlags: NO_DOMAIN leaves out the copy of the domain definition (we read names and disks only).</summary>
    internal const uint VIR_DOMAIN_CHECKPOINT_XML_NO_DOMAIN = 2;

    [LibraryImport(Libraries.Libvirt, StringMarshalling = StringMarshalling.Utf8)]
    internal static partial CheckpointHandle virDomainCheckpointCreateXML(DomainHandle domain, string xml, uint flags);

    [LibraryImport(Libraries.Libvirt, StringMarshalling = StringMarshalling.Utf8)]
    internal static partial CheckpointHandle virDomainCheckpointLookupByName(DomainHandle domain, string name, uint flags);

    [LibraryImport(Libraries.Libvirt)]
    internal static partial int virDomainCheckpointDelete(CheckpointHandle checkpoint, uint flags);

    /// <summary>Fills <paramref name="checkpoints"/> with a malloc'd array of owned virDomainCheckpointPtr; returns the count or -1.</summary>
    [LibraryImport(Libraries.Libvirt)]
    internal static partial int virDomainListAllCheckpoints(DomainHandle domain, out IntPtr* checkpoints, uint flags);

    /// <summary>Owned string: free with libc free (NativeMemory.Free).</summary>
    [LibraryImport(Libraries.Libvirt)]
    internal static partial byte* virDomainCheckpointGetXMLDesc(CheckpointHandle checkpoint, uint flags);

    /// <summary>Not owned: valid while the checkpoint handle lives.</summary>
    [LibraryImport(Libraries.Libvirt)]
    internal static partial byte* virDomainCheckpointGetName(CheckpointHandle checkpoint);

    [LibraryImport(Libraries.Libvirt)]
    internal static partial int virDomainCheckpointFree(IntPtr checkpoint);
}

/// <summary>Owns a virDomainCheckpointPtr (holds a reference on its domain inside libvirt, so the domain handle may go first).</summary>
internal sealed class CheckpointHandle : SafeHandle
{
    public CheckpointHandle() : base(IntPtr.Zero, ownsHandle: true) { }

    public override bool IsInvalid => handle == IntPtr.Zero;

    /// <summary>Takes ownership of one entry of virDomainListAllCheckpoints.</summary>
    internal static CheckpointHandle FromOwned(IntPtr raw)
    {
        var h = new CheckpointHandle();
        h.SetHandle(raw);
        return h;
    }

    protected override bool ReleaseHandle() => Interop.virDomainCheckpointFree(handle) == 0;
}
