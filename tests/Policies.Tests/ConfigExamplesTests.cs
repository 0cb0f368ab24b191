using System.Text.Json.Nodes;
using Backupd.Policies.Loading;
using Backupd.Policies.Model;
using Backupd.Policies.Yaml;
using Json.Schema;

namespace Backupd.Policies.Tests;

/// <summary>Every example policy in config/ is valid for both the JSON Schema and the loader.</summary>
public class ConfigExamplesTests
{
    internal static string RepoRoot()
    {
        var dir = AppContext.BaseDirectory;
        while (!File.Exists(Path.Combine(dir, "BackupDaemon.sln"))) dir = Path.GetDirectoryName(dir) ?? throw new InvalidOperationException("BackupDaemon.sln not found above the test directory");
        return dir;
    }

    private static readonly string ConfigDir = Path.Combine(RepoRoot(), "config");
    private static readonly JsonSchema Schema = JsonSchema.FromFile(Path.Combine(ConfigDir, "policy.schema.json"));

    public static TheoryData<string> Examples() =>
        new(PolicyLoader.PolicyFilesIn(Path.Combine(ConfigDir, "policies.d")).Select(Path.GetFileName)!);

    private static List<string> SchemaErrors(JsonNode? document)
    {
        var result = Schema.Evaluate(document, new EvaluationOptions { OutputFormat = OutputFormat.List });
        return result.IsValid ? [] : result.Details.Where(d => d.Errors is not null).SelectMany(d => d.Errors!.Select(e => $"{d.InstanceLocation}: {e.Value}")).ToList();
    }

    [Fact]
    public void There_are_examples() => Assert.True(Examples().Count >= 2);

    [Theory]
    [MemberData(nameof(Examples))]
    public void Example_is_valid_for_the_schema_and_the_loader(string file)
    {
        var path = Path.Combine(ConfigDir, "policies.d", file);
        var loaded = PolicyLoader.LoadFile(path);
        Assert.True(loaded.IsValid, string.Join("\n", loaded.Errors));
        Assert.NotEmpty(loaded.Policies);
        foreach (var document in YamlJson.Convert(File.ReadAllText(path)))
            Assert.Empty(SchemaErrors(document));
    }

    [Fact]
    public void All_examples_load_together()
    {
        var set = PolicyLoader.LoadDirectory(Path.Combine(ConfigDir, "policies.d"));
        Assert.True(set.IsValid, string.Join("\n", set.Errors));
    }

    [Fact]
    public void Full_every_defaults_to_7_is_read_and_a_bad_value_names_file_and_line()
    {
        const string head = "name: web\ndomains: [w]\nschedule: hourly\nrepository: /r\n";
        Assert.Equal(FullReadPeriod.EveryBackups(7), PolicyLoader.ParseText(head, "p.yaml").Policies[0].FullEvery);
        Assert.Equal(FullReadPeriod.EveryBackups(3), PolicyLoader.ParseText(head + "full-every: 3\n", "p.yaml").Policies[0].FullEvery);
        Assert.Equal(FullReadPeriod.EveryDays(14), PolicyLoader.ParseText(head + "full-every: 14d\n", "p.yaml").Policies[0].FullEvery);
        Assert.Equal(FullReadPeriod.Either(7, 14), PolicyLoader.ParseText(head + "full-every: {backups: 7, days: 14}\n", "p.yaml").Policies[0].FullEvery);
        Assert.Equal(FullReadPeriod.EveryDays(30), PolicyLoader.ParseText(head + "full-every:\n  days: 30\n", "p.yaml").Policies[0].FullEvery);

        var bad = PolicyLoader.ParseText(head + "full-every: 0\n", "/etc/backupd/policies.d/p.yaml");

        Assert.False(bad.IsValid);
        Assert.Equal("/etc/backupd/policies.d/p.yaml:5:13: 'full-every' expects " + FullEveryExpected + ", got '0'", Assert.Single(bad.Errors).ToString());
        foreach (var wrong in new[] { "0", "0d", "14w", "3661d", "{}", "{days: 0}", "{weeks: 2}" })
            Assert.NotEmpty(SchemaErrors(YamlJson.Convert(head + $"full-every: {wrong}\n")[0]));
        foreach (var right in new[] { "3", "14d", "{backups: 7, days: 14}", "{days: 30}" })
            Assert.Empty(SchemaErrors(YamlJson.Convert(head + $"full-every: {right}\n")[0]));
    }

    [Theory]
    [InlineData("full-every: 14w", "5:13: 'full-every' expects " + FullEveryExpected + ", got '14w'")]
    [InlineData("full-every: 3661d", "5:13: 'full-every' expects " + FullEveryExpected + ", got '3661d'")]
    [InlineData("full-every: {}", "5:13: 'full-every' expects " + FullEveryExpected + ", got an empty mapping")]
    [InlineData("full-every: {days: 0}", "5:20: 'full-every.days' expects a whole number from 1 to 3660, got '0'")]
    [InlineData("full-every: {backups: x, days: 2}", "5:23: 'full-every.backups' expects a whole number from 1 to 10000, got 'x'")]
    [InlineData("full-every: {weeks: 2}", "5:14: unknown key 'weeks' in 'full-every'; expected one of: backups, days")]
    public void A_bad_full_every_names_file_line_and_what_is_expected(string line, string error)
    {
        var bad = PolicyLoader.ParseText("name: web\ndomains: [w]\nschedule: hourly\nrepository: /r\n" + line + "\n", "/etc/backupd/policies.d/p.yaml");

        Assert.False(bad.IsValid);
        Assert.Contains("/etc/backupd/policies.d/p.yaml:" + error, bad.Errors.Select(e => e.ToString()));
    }

    private const string FullEveryExpected =
        "a whole number of backups from 1 to 10000, a number of days from 1d to 3660d such as 14d, or {backups: N, days: K} (whichever comes first)";

    [Theory]
    [InlineData("2KiB")]
    [InlineData("4KiB")]
    [InlineData("4096")]
    [InlineData("'4096'")]
    [InlineData("100KiB")]
    [InlineData("1MiB")]
    [InlineData("1024K")]
    [InlineData("4MiB")]
    [InlineData("4194304")]
    [InlineData("8MiB")]
    [InlineData("64MiB")]
    [InlineData("67108864")]
    public void Schema_loader_and_repository_accept_the_same_block_sizes(string value)
    {
        var text = $"name: web\ndomains: [w]\nschedule: hourly\nrepository: /r\nblock-size: {value}\n";
        Assert.True(Units.TryParseSize(value.Trim('\''), out var bytes));
        var repositoryAccepts = Backupd.Storage.Delta.BlockHasher.IsValidBlockSize(bytes);

        var loaded = PolicyLoader.ParseText(text, "p.yaml");
        Assert.Equal(repositoryAccepts, loaded.IsValid);
        if (repositoryAccepts) Assert.Equal(bytes, loaded.Policies[0].BlockSize);
        Assert.Equal(repositoryAccepts, SchemaErrors(YamlJson.Convert(text)[0]).Count == 0);
    }

    [Fact]
    public void The_policy_block_size_range_is_the_repository_range()
    {
        Assert.Equal(Backupd.Storage.Delta.BlockHasher.MinBlockSize, Backupd.Policies.Model.PolicyDefaults.MinBlockSize);
        Assert.Equal(Backupd.Storage.Delta.BlockHasher.MaxBlockSize, Backupd.Policies.Model.PolicyDefaults.MaxBlockSize);
        for (long p = 1; p <= 1L << 30; p *= 2)
            foreach (var b in new[] { p - 1, p, p + 1 })
                Assert.Equal(Backupd.Storage.Delta.BlockHasher.IsValidBlockSize(b), Backupd.Policies.Model.PolicyDefaults.IsValidBlockSize(b));
    }

    [Fact]
    public void The_schema_lists_exactly_the_repository_block_sizes()
    {
        var schema = JsonNode.Parse(File.ReadAllText(Path.Combine(ConfigDir, "policy.schema.json")))!;
        var listed = schema["$defs"]!["policy"]!["properties"]!["block-size"]!["oneOf"]![0]!["enum"]!.AsArray().Select(n => n!.GetValue<long>()).ToList();
        var expected = new List<long>();
        for (long b = Backupd.Storage.Delta.BlockHasher.MinBlockSize; b <= Backupd.Storage.Delta.BlockHasher.MaxBlockSize; b *= 2) expected.Add(b);
        Assert.Equal(expected, listed);
    }

    [Theory]
    [InlineData("name: web\ndomains: [w]\nschedule: hourly\nrepository: /r\ncolour: red\n")]
    [InlineData("name: web\ndomains: [w]\nschedule: hourly\nrepository: /r\nretention: {keep-daily: -1}\n")]
    [InlineData("name: web\ndomains: [w]\nschedule: hourly\nrepository: /r\nquiesce: always\n")]
    [InlineData("name: web\ndomains: []\nschedule: hourly\nrepository: /r\n")]
    [InlineData("name: web\ndomains: [w]\nschedule: '0 0 2 * *'\nrepository: /r\n")]
    [InlineData("name: web\ndomains: [w]\nrepository: /r\n")]
    [InlineData("policies: []\n")]
    [InlineData("name: web\ndomains: [w]\nschedule: hourly\nrepository: /r\ntimeouts: {copy: forever}\n")]
    [InlineData("name: web\ndomains: [w]\nschedule: hourly\nrepository: /r\nblock-size: 100\n")]
    [InlineData("name: web\ndomains: [w]\nschedule: hourly\nrepository: /r\nchains: {max-depth: 0}\n")]
    [InlineData("name: web\ndomains: [w]\nschedule: hourly\nrepository: /r\nchains: {method: pull}\n")]
    [InlineData("name: web\ndomains: [w]\nschedule: hourly\nrepository: /r\nchains: {max-depth: 3, method: merge}\n")]
    [InlineData("name: web\ndomains: [w]\nschedule: hourly\nrepository: /r\nchains: {max-depht: 3}\n")]
    [InlineData("name: web\ndomains: [w]\nschedule: hourly\nrepository: /r\ncopies: [{to: relative/dir}]\n")]
    [InlineData("name: web\ndomains: [w]\nschedule: hourly\nrepository: /r\ncopies: [{key: /k}]\n")]
    [InlineData("name: web\ndomains: [w]\nschedule: hourly\nrepository: /r\ncopies: [{to: /c, retries: 50}]\n")]
    public void Schema_and_loader_both_reject_malformed_files(string text)
    {
        Assert.False(PolicyLoader.ParseText(text, "p.yaml").IsValid);
        Assert.NotEmpty(SchemaErrors(YamlJson.Convert(text)[0]));
    }
}
