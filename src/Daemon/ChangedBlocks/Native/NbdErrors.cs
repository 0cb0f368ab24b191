using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;

namespace Backupd.Daemon.ChangedBlocks.Native;

/// <summary>A libnbd call failed: the operation, libnbd's message and errno.</summary>
public sealed class NbdException(string operation, int errno, string nbdMessage)
    : IOException($"{operation} failed: {nbdMessage} (errno {errno})")
{
    public string Operation { get; } = operation;
    public int Errno { get; } = errno;
    public string NbdMessage { get; } = nbdMessage;
}

/// <summary>
/// The one place that turns libnbd's per-thread last error (nbd_get_error/nbd_get_errno) into an <see cref="NbdException"/>.
/// Must be called on the failing thread, right after the failing call, before any await.
/// </summary>
internal static unsafe class NbdErrors
{
    public static NbdException Last(string operation)
    {
        var message = Marshal.PtrToStringUTF8((IntPtr)Interop.nbd_get_error()) ?? "libnbd reported failure without a message";
        return new NbdException(operation, Interop.nbd_get_errno(), message);
    }

    /// <summary>Throws the last error when a call returned -1.</summary>
    public static int Check(int result, [CallerArgumentExpression(nameof(result))] string operation = "")
    {
        if (result < 0) throw Last(Trim(operation));
        return result;
    }

    public static long Check(long result, [CallerArgumentExpression(nameof(result))] string operation = "")
    {
        if (result < 0) throw Last(Trim(operation));
        return result;
    }

    public static NbdHandle Check(NbdHandle handle, [CallerArgumentExpression(nameof(handle))] string operation = "")
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
