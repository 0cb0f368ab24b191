using System.Text.Json;
using System.Text.RegularExpressions;
using Backupd.Integration.Fixtures;

namespace Backupd.Integration;

[Trait("Category", "Integration")]
public sealed partial class DoctorTests(PostgresDatabase database) : IClassFixture<PostgresDatabase>
{
    [Fact]
    public async Task Doctor_reports_libvirts_real_version_through_our_binding_and_passes()
    {
        await Requirements.LibvirtAndQemuAsync();
        using var config = new TempConfig(database.ConnectionString);

        var (code, stdout, stderr) = await BackupdProcess.RunAsync("--config", config.Path, "doctor", "--json");

        Assert.True(code == 0, $"doctor failed ({code}): {stdout} {stderr}");
        var checks = JsonDocument.Parse(stdout).RootElement.EnumerateArray().ToDictionary(
            e => e.GetProperty("name").GetString()!, e => (Ok: e.GetProperty("ok").GetBoolean(), Detail: e.GetProperty("detail").GetString()!));
        var virshVersion = LibraryVersion().Match(await Tools.Virsh("version")).Groups[1].Value;
        Assert.Contains($"libvirt {virshVersion} (via virConnectGetLibVersion)", checks["libvirt"].Detail, StringComparison.Ordinal);
        Assert.True(checks["qemu-img"].Ok);
        Assert.Contains("PostgreSQL", checks["catalog"].Detail, StringComparison.Ordinal);
        Assert.True(Directory.Exists(config.StateDirectory));
    }

    [Fact]
    public async Task Doctor_names_what_is_missing_and_exits_1()
    {
        using var config = new TempConfig("Host=127.0.0.1;Port=1;Username=nobody;Database=none;Timeout=2");

        var (code, stdout, _) = await BackupdProcess.RunAsync("--config", config.Path, "doctor");

        Assert.Equal(1, code);
        Assert.Contains("MISSING", stdout, StringComparison.Ordinal);
        Assert.Contains("pg_ctlcluster", stdout, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Invalid_configuration_names_the_key_and_exits_2()
    {
        using var config = new TempConfig(database.ConnectionString, "max-paralel: 3");

        var (code, _, stderr) = await BackupdProcess.RunAsync("--config", config.Path, "doctor");

        Assert.Equal(2, code);
        Assert.Matches(@"backupd\.yaml:5:1: unknown key 'max-paralel' \(did you mean 'max-parallel'\?\)", stderr);
    }

    [GeneratedRegex(@"Using library: libvirt (\S+)")]
    private static partial Regex LibraryVersion();
}
