namespace Backupd.Integration.Fixtures;

/// <summary>Fails a test loudly, with the command to run, when a real component it needs is missing.</summary>
public static class Requirements
{
    private static readonly Lazy<Task> LibvirtCheck = new(CheckLibvirtAsync);

    public static Task LibvirtAndQemuAsync() => LibvirtCheck.Value;

    private static async Task CheckLibvirtAsync()
    {
        if (Environment.UserName != "root")
            throw new InvalidOperationException("integration tests drive qemu:///system and must run as root");
        foreach (var binary in new[] { "/usr/bin/qemu-img", "/usr/bin/qemu-io", "/usr/bin/qemu-system-x86_64", "/usr/bin/virsh" })
        {
            if (!File.Exists(binary))
                throw new InvalidOperationException($"{binary} is missing: {Tools.SetupHint}");
        }
        var (code, _, stderr) = await Tools.TryRunAsync("virsh", "-c", "qemu:///system", "version");
        if (code != 0)
            throw new InvalidOperationException($"libvirtd is not reachable at qemu:///system ({stderr.Trim()}): {Tools.SetupHint}");
    }
}
