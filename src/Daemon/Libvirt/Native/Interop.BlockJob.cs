using System.Runtime.InteropServices;

namespace Backupd.Daemon.Libvirt.Native;

/// <summary>Block commit and block-job control (libvirt-domain.h).</summary>
internal static partial class Interop
{
    /// <summary>virDomainBlockCommitFlags.</summary>
    internal const uint VIR_DOMAIN_BLOCK_COMMIT_SHALLOW = 1, VIR_DOMAIN_BLOCK_COMMIT_DELETE = 2,
        VIR_DOMAIN_BLOCK_COMMIT_ACTIVE = 4, VIR_DOMAIN_BLOCK_COMMIT_RELATIVE = 8, VIR_DOMAIN_BLOCK_COMMIT_BANDWIDTH_BYTES = 16;

    /// <summary>virDomainBlockJobAbortFlags.</summary>
    internal const uint VIR_DOMAIN_BLOCK_JOB_ABORT_ASYNC = 1, VIR_DOMAIN_BLOCK_JOB_ABORT_PIVOT = 2;

    /// <summary>virDomainBlockJobInfo: int type; unsigned long bandwidth; unsigned long long cur, end (32 bytes on x86-64).</summary>
    [StructLayout(LayoutKind.Sequential)]
    internal struct VirDomainBlockJobInfo
    {
        public int Type;
        public CULong Bandwidth;
        public ulong Cur;
        public ulong End;
    }

    [LibraryImport(Libraries.Libvirt, StringMarshalling = StringMarshalling.Utf8)]
    internal static partial int virDomainBlockCommit(DomainHandle domain, string disk, string? baseImage, string? top, CULong bandwidth, uint flags);

    /// <summary>1 = a job exists and <paramref name="info"/> is filled, 0 = no job, -1 = error.</summary>
    [LibraryImport(Libraries.Libvirt, StringMarshalling = StringMarshalling.Utf8)]
    internal static partial int virDomainGetBlockJobInfo(DomainHandle domain, string disk, out VirDomainBlockJobInfo info, uint flags);

    [LibraryImport(Libraries.Libvirt, StringMarshalling = StringMarshalling.Utf8)]
    internal static partial int virDomainBlockJobAbort(DomainHandle domain, string disk, uint flags);
}
