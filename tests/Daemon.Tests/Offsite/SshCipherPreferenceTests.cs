using Backupd.Daemon.Offsite;
using Xunit;

namespace Backupd.Daemon.Tests.Offsite;

public sealed class SshCipherPreferenceTests
{
    [Fact]
    public void A_cpu_with_aes_puts_aes_gcm_ahead_of_the_defaults()
    {
        var cpuInfo = "processor\t: 0\nflags\t\t: fpu vme sse2 aes avx2 pclmulqdq\nbugs\t\t: spectre_v1\n";
        Assert.Equal("Ciphers=^aes128-gcm@openssh.com,aes256-gcm@openssh.com", SshConnection.PreferredCiphers(cpuInfo));
    }

    [Theory]
    [InlineData("processor\t: 0\nflags\t\t: fpu vme sse2 avx2 aesx\n")] // a flag that only starts with "aes"
    [InlineData("processor\t: 0\nmodel name\t: aes lookalike\n")] // "aes" outside the flags line
    [InlineData("")] // no /proc/cpuinfo
    public void Without_aes_instructions_ssh_keeps_its_own_order(string cpuInfo) =>
        Assert.Null(SshConnection.PreferredCiphers(cpuInfo));
}
