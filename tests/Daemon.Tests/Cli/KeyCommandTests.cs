using System.Text.Json;

namespace Backupd.Daemon.Tests.Cli;

/// <summary>Issue 16 through the real binary: `key move-out`, then verify with the key in the host key directory and without it.</summary>
public sealed partial class RepositoryCommandsTests
{
    [Fact]
    public void Key_move_out_then_verify_passes_and_fails_with_the_key_directory_emptied()
    {
        var img = MakeImage("key.img", 41, 2);
        var env = new Dictionary<string, string> { ["BACKUPD_KEY_DIRECTORY"] = P("keys") };
        Assert.Equal(0, Run(env, "backup", "--file", img, "--to", P("repo")).Code);

        var move = Run(env, "key", "move-out", "--repository", P("repo"), "--json");
        Assert.Equal(0, move.Code);
        var keyFile = JsonDocument.Parse(move.Out).RootElement.GetProperty("keyFile").GetString()!;
        Assert.StartsWith(P("keys") + "/", keyFile, StringComparison.Ordinal);
        Assert.True(File.Exists(keyFile));
        Assert.False(File.Exists(Path.Combine(P("repo"), "key")));
        Assert.Equal(0, Run(env, "verify", "--repository", P("repo")).Code);

        File.Delete(keyFile);
        var verify = Run(env, "verify", "--repository", P("repo"));
        Assert.NotEqual(0, verify.Code);
        Assert.Contains(keyFile, verify.Err, StringComparison.Ordinal);
        Assert.Contains("restore the key from your copy", verify.Err, StringComparison.Ordinal);
    }
}
