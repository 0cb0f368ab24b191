using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;

namespace Backupd.Daemon.Libvirt.Native;

/// <summary>
/// The one place that turns libvirt's per-thread last error into a <see cref="LibvirtException"/>.
/// Must be called on the failing thread, right after the failing call, before any await.
/// </summary>
internal static unsafe class LibvirtErrors
{
    private static int initialized;

    /// <summary>Replaces libvirt's default handler (which prints every error to stderr) with a no-op.</summary>
    public static void SilenceDefaultPrinting()
    {
        if (Interlocked.Exchange(ref initialized, 1) == 1) return;
        Interop.virSetErrorFunc(null, &Ignore);
    }

    [UnmanagedCallersOnly]
    private static void Ignore(void* userData, Interop.VirError* error) { }

    public static LibvirtException Last(string operation)
    {
        var error = Interop.virGetLastError();
        if (error == null)
            return new LibvirtException(operation, 0, 0, "libvirt reported failure without an error");
        var message = Marshal.PtrToStringUTF8((IntPtr)error->Message) ?? "(no message)";
        var exception = new LibvirtException(operation, error->Code, error->Domain, message);
        Interop.virResetLastError();
        return exception;
    }

    /// <summary>Throws the last error when a call returned -1.</summary>
    public static int Check(int result, [CallerArgumentExpression(nameof(result))] string operation = "")
    {
        if (result < 0) throw Last(Trim(operation));
        return result;
    }

    public static T Check<T>(T handle, [CallerArgumentExpression(nameof(handle))] string operation = "") where T : SafeHandle
    {
        if (handle.IsInvalid)
        {
            var exception = Last(Trim(operation));
            handle.SetHandleAsInvalid();
            throw exception;
        }
        return handle;
    }

    private static string Trim(string expression)
    {
        var paren = expression.IndexOf('(', StringComparison.Ordinal);
        var name = paren > 0 ? expression[..paren] : expression;
        return name.Replace("Interop.", "", StringComparison.Ordinal);
    }
}
