namespace Backupd.Daemon.Libvirt;

/// <summary>A libvirt call failed. <see cref="Code"/> is virErrorNumber (e.g. 42 NO_DOMAIN, 83 BLOCK_COPY_ACTIVE).</summary>
public sealed class LibvirtException : Exception
{
    public LibvirtException(string operation, int code, int domain, string libvirtMessage)
        : base($"{operation} failed: {libvirtMessage} (libvirt error {code}, domain {domain})")
    {
        Operation = operation;
        Code = code;
        ErrorDomain = domain;
        LibvirtMessage = libvirtMessage;
    }

    public LibvirtException() { }
    public LibvirtException(string message) : base(message) { }
    public LibvirtException(string message, Exception inner) : base(message, inner) { }

    public string Operation { get; } = "";
    public int Code { get; }
    public int ErrorDomain { get; }
    public string LibvirtMessage { get; } = "";
}
