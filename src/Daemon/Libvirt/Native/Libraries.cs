namespace Backupd.Daemon.Libvirt.Native;

/// <summary>Versioned sonames: the unversioned .so exists only with libvirt-dev installed.</summary>
internal static class Libraries
{
    public const string Libvirt = "libvirt.so.0";
    public const string LibvirtQemu = "libvirt-qemu.so.0";
}
