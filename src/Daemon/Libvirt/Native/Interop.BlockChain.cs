using System.Runtime.InteropServices;

namespace Backupd.Daemon.Libvirt.Native;

/// <summary>
/// Chain maintenance block jobs (libvirt-domain.h): pull/rebase and copy. Commit, job info and abort/pivot
/// are in Interop.BlockJob.cs and shared.
/// </summary>
internal static unsafe partial class Interop
{
    /// <summary>virDomainBlockRebaseFlags (only those a pull uses: no COPY, so the job is a pull).</summary>
    internal const uint VIR_DOMAIN_BLOCK_REBASE_SHALLOW = 1, VIR_DOMAIN_BLOCK_REBASE_RELATIVE = 16, VIR_DOMAIN_BLOCK_REBASE_BANDWIDTH_BYTES = 64;

    /// <summary>virDomainBlockPullFlags.</summary>
    internal const uint VIR_DOMAIN_BLOCK_PULL_BANDWIDTH_BYTES = 64;

    /// <summary>virDomainBlockCopyFlags.</summary>
    internal const uint VIR_DOMAIN_BLOCK_COPY_SHALLOW = 1, VIR_DOMAIN_BLOCK_COPY_REUSE_EXT = 2, VIR_DOMAIN_BLOCK_COPY_TRANSIENT_JOB = 4;

    /// <summary>VIR_TYPED_PARAM_ULLONG, and the field name VIR_DOMAIN_BLOCK_COPY_BANDWIDTH (bytes per second).</summary>
    internal const int VIR_TYPED_PARAM_ULLONG = 4;
    internal const string VIR_DOMAIN_BLOCK_COPY_BANDWIDTH = "bandwidth";

    /// <summary>virTypedParameter: char field[80]; int type; union (8 bytes) value — 96 bytes on x86-64.</summary>
    [StructLayout(LayoutKind.Sequential)]
    internal struct VirTypedParameter
    {
        public fixed byte Field[80];
        public int Type;
        public ulong Value;
    }

    /// <summary>Pull into the active layer every layer above <paramref name="baseImage"/> (null: the whole chain).</summary>
    [LibraryImport(Libraries.Libvirt, StringMarshalling = StringMarshalling.Utf8)]
    internal static partial int virDomainBlockRebase(DomainHandle domain, string disk, string? baseImage, CULong bandwidth, uint flags);

    /// <summary>virDomainBlockJobSetSpeedFlags: the bandwidth is in bytes/s, not MiB/s.</summary>
    internal const uint VIR_DOMAIN_BLOCK_JOB_SPEED_BANDWIDTH_BYTES = 1;

    [LibraryImport(Libraries.Libvirt, StringMarshalling = StringMarshalling.Utf8)]
    internal static partial int virDomainBlockJobSetSpeed(DomainHandle domain, string disk, CULong bandwidth, uint flags);

    [LibraryImport(Libraries.Libvirt, StringMarshalling = StringMarshalling.Utf8)]
    internal static partial int virDomainBlockPull(DomainHandle domain, string disk, CULong bandwidth, uint flags);

    [LibraryImport(Libraries.Libvirt, StringMarshalling = StringMarshalling.Utf8)]
    internal static partial int virDomainBlockCopy(DomainHandle domain, string disk, string destinationXml, VirTypedParameter* parameters, int count, uint flags);
}
