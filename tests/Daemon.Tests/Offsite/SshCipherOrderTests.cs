using Backupd.Daemon.Offsite;

namespace Backupd.Daemon.Tests.Offsite;

public sealed class SshCipherOrderTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("bkd-ciphers-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    [Fact]
    public void Aes_gcm_moves_to_the_front_and_nothing_is_added_or_lost()
    {
        const string g = "user root\nciphers chacha20-poly1305@openssh.com,aes128-ctr,aes256-gcm@openssh.com,aes128-gcm@openssh.com\nmacs hmac-sha2-256\n";
        Assert.Equal("aes256-gcm@openssh.com,aes128-gcm@openssh.com,chacha20-poly1305@openssh.com,aes128-ctr", SshCipherOrder.Preferred(g));
    }

    [Theory]
    [InlineData("ciphers chacha20-poly1305@openssh.com,aes256-ctr\n")] // the policy allows no AES-GCM: nothing to prefer
    [InlineData("ciphers aes128-gcm@openssh.com,chacha20-poly1305@openssh.com\n")] // already first
    [InlineData("user root\nport 22\n")] // no ciphers line
    public void Nothing_changes_when_there_is_nothing_to_prefer(string g) => Assert.Null(SshCipherOrder.Preferred(g));

    [Theory]
    [InlineData(new[] { "-i", "/etc/backupd/key", "-c", "aes256-ctr" }, true)]
    [InlineData(new[] { "-caes256-ctr" }, true)]
    [InlineData(new[] { "-o", "Ciphers=aes256-ctr" }, true)]
    [InlineData(new[] { "-o", "ciphers aes256-ctr" }, true)]
    [InlineData(new[] { "-i", "/etc/backupd/key", "-C", "-o", "BatchMode=yes" }, false)]
    public void An_explicit_choice_on_the_command_line_is_kept(string[] args, bool chosen) => Assert.Equal(chosen, SshCipherOrder.ChosenBy(args));

    [Fact]
    public void The_real_ssh_configuration_decides_the_set()
    {
        // ssh -G resolves the configuration without connecting: a config allowing only two ciphers gives those two,
        // AES-GCM first; one allowing no AES-GCM gives nothing to change.
        var config = Path.Combine(_dir, "config");
        File.WriteAllText(config, "Host *\n  Ciphers aes256-ctr,aes128-gcm@openssh.com\n");
        var target = CopyTarget.Parse("ssh://copier@backup.example:2222/srv/copies");
        Assert.Equal("aes128-gcm@openssh.com,aes256-ctr", SshConnection.PreferredCiphers(["ssh", "-F", config], target));

        File.WriteAllText(config, "Host *\n  Ciphers aes256-ctr,chacha20-poly1305@openssh.com\n");
        Assert.Null(SshConnection.PreferredCiphers(["ssh", "-F", config], target));
    }

    [Fact]
    public void No_ssh_client_gives_no_preference_and_no_failure()
    {
        var target = CopyTarget.Parse("ssh://copier@backup.example/srv/copies");
        Assert.Null(SshConnection.PreferredCiphers([Path.Combine(_dir, "no-such-ssh")], target));
    }
}
