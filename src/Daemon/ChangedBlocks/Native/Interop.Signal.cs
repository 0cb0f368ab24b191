using System.Runtime.InteropServices;

namespace Backupd.Daemon.ChangedBlocks.Native;

/// <summary>kill(2): qemu-nbd --fork runs detached from us, so it is signalled by pid, not through a Process object.</summary>
internal static partial class Interop
{
    internal const int SIGTERM = 15, SIGKILL = 9;

    [LibraryImport("libc", EntryPoint = "kill", SetLastError = true)]
    internal static partial int Kill(int pid, int signal);
}
