using System.Text;
using Backupd.Policies.Loading;
using CsCheck;

namespace Backupd.Policies.Tests;

/// <summary>No input crashes the loader: every outcome is either policies or positioned errors.</summary>
public class LoaderFuzzTests
{
    private const string Valid = """
        policies:
          - name: web
            domains: {include: ['web-*', db1], exclude: [web-test]}
            schedule: {cron: ["0 30 2 * * ?", daily 14:00, every 15m], time-zone: Europe/Berlin}
            repository: /srv/backup
            retention: {keep-last: 3, keep-daily: 7}
            verify: {after-backup: true}
            timeouts: {copy: 1h30m}
            bandwidth: {copy: 100MiB/s}
        """;

    private static readonly string[] Fragments =
    [
        "name: ", "domains: ", "schedule: ", "repository: ", "policies:", "retention: ", "keep-last: ", "verify: ",
        "\n", "\n  ", "  ", "- ", "[", "]", "{", "}", ":", ",", "'", "\"", "&a ", "*a", "---\n", "...\n", "#", "\t",
        "?", "|", ">", "!!str ", "!!map ", "%YAML 1.2\n", "0 0 2 * * ?", "daily 02:30", "web", "/srv", "-1", "99999999999",
        "\u00e9", "\0", "\r\n", "@", "`", "%", "<<: *a", "~", "null", "true",
    ];

    private static void AssertWellFormed(PolicyFileResult result)
    {
        Assert.Equal(result.IsValid, result.Errors.Count == 0);
        if (result.IsValid) Assert.NotEmpty(result.Policies);
        else Assert.Empty(result.Policies);
        Assert.All(result.Errors, e =>
        {
            Assert.True(e.Line >= 1 && e.Column >= 1, e.ToString());
            Assert.False(string.IsNullOrWhiteSpace(e.Message));
        });
        Assert.True(result.Errors.Count <= PolicyLoader.MaxErrorsPerFile + 1);
    }

    [Fact]
    public void Random_bytes_never_crash_the_loader() =>
        Gen.Byte.Array[0, 400].Sample(bytes => AssertWellFormed(PolicyLoader.Parse(bytes, "fuzz.yaml")), iter: 3000);

    [Fact]
    public void Yaml_like_token_soup_never_crashes_the_loader() =>
        Gen.OneOfConst(Fragments).Array[0, 60].Sample(parts => AssertWellFormed(PolicyLoader.ParseText(string.Concat(parts), "fuzz.yaml")), iter: 5000);

    [Fact]
    public void Mutations_of_a_valid_file_never_crash_the_loader()
    {
        Assert.True(PolicyLoader.ParseText(Valid, "fuzz.yaml").IsValid);
        var bytes = Encoding.UTF8.GetBytes(Valid);
        Gen.Select(Gen.Int[0, bytes.Length - 1], Gen.Byte, Gen.Int[0, 2]).Array[1, 8].Sample(edits =>
        {
            var mutated = bytes.ToList();
            foreach (var (at, value, kind) in edits)
            {
                var i = Math.Min(at, mutated.Count - 1);
                if (kind == 0) mutated[i] = value;
                else if (kind == 1) mutated.Insert(i, value);
                else if (mutated.Count > 1) mutated.RemoveAt(i);
            }
            AssertWellFormed(PolicyLoader.Parse(mutated.ToArray(), "fuzz.yaml"));
        }, iter: 5000);
    }
}
