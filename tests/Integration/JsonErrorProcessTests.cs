using System.Text.Json;
using Backupd.Integration.Fixtures;

namespace Backupd.Integration;

/// <summary>`backup --domain ... --json` that is refused prints one JSON error object on stdout (docs/cli.md), with and without the catalog.</summary>
[Trait("Category", "Integration")]
public sealed class JsonErrorProcessTests(PostgresDatabase database) : IClassFixture<PostgresDatabase>, IDisposable
{
    private readonly TempConfig config = new(database.ConnectionString);

    public void Dispose() => config.Dispose();

    private string Repository => Path.Combine(config.Directory, "repo");

    private static JsonElement SingleObject(string stdout)
    {
        var reader = new Utf8JsonReader(System.Text.Encoding.UTF8.GetBytes(stdout));
        using var document = JsonDocument.ParseValue(ref reader);
        Assert.True(string.IsNullOrWhiteSpace(stdout[(int)reader.BytesConsumed..]), $"more than one JSON value on stdout:\n{stdout}");
        return document.RootElement.Clone();
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task A_missing_domain_is_a_not_found_error_object(bool noCatalog)
    {
        string[] args = ["--config", config.Path, "backup", "--domain", $"bkd-no-such-{Guid.NewGuid():N}"[..24], "--to", Repository, "--json"];
        var run = await BackupdProcess.RunAsync(noCatalog ? [.. args, "--no-catalog"] : args);

        Assert.Equal(3, run.ExitCode);
        var error = SingleObject(run.Stdout);
        Assert.Equal("domain-not-found", error.GetProperty("kind").GetString());
        Assert.Equal(3, error.GetProperty("exitCode").GetInt32());
        Assert.Contains("bkd-no-such-", error.GetProperty("error").GetString(), StringComparison.Ordinal);
        Assert.Contains("bkd-no-such-", run.Stderr, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Quiesce_required_without_a_guest_agent_is_a_refusal_object_and_leaves_the_vm_alone()
    {
        await using var vm = await TestVm.CreateAsync(new DiskSpec("vda"));
        await vm.StartAsync();
        var before = await vm.LiveXmlAsync();

        var run = await BackupdProcess.RunAsync("--config", config.Path, "backup", "--domain", vm.Name, "--to", Repository, "--quiesce", "required", "--json");

        Assert.Equal(1, run.ExitCode);
        var error = SingleObject(run.Stdout);
        Assert.Equal("quiesce-unavailable", error.GetProperty("kind").GetString());
        Assert.Equal(1, error.GetProperty("exitCode").GetInt32());
        Assert.False(string.IsNullOrWhiteSpace(error.GetProperty("error").GetString()));
        Assert.Equal(before, await vm.LiveXmlAsync());
        Assert.Equal(vm.Disk("vda").Path, await vm.ActiveSourceAsync("vda"));
    }
}
