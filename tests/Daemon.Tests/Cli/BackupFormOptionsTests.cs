using System.Diagnostics;
using System.Text.Json;
using Backupd.Daemon.Cli;
using Backupd.Daemon.Cli.Commands;

namespace Backupd.Daemon.Tests.Cli;

/// <summary>
/// `backupd backup` as a child process: an option of the other form is refused (exit 2, naming the option
/// and the form) before anything is touched, and with --json every refusal is one JSON error object on stdout.
/// </summary>
public sealed class BackupFormOptionsTests : IDisposable
{
    private readonly string _root = Directory.CreateTempSubdirectory("bkd-forms-").FullName;

    public void Dispose() => Directory.Delete(_root, recursive: true);

    private string Repository => Path.Combine(_root, "repo");

    private string Image()
    {
        var path = Path.Combine(_root, "disk.img");
        File.WriteAllBytes(path, new byte[65536]);
        return path;
    }

    private static (int Code, string Out, string Err) Run(params string[] args)
    {
        var psi = new ProcessStartInfo("dotnet") { RedirectStandardOutput = true, RedirectStandardError = true };
        psi.ArgumentList.Add(Path.Combine(AppContext.BaseDirectory, "backupd.dll"));
        foreach (var a in args) psi.ArgumentList.Add(a);
        // No configuration anywhere: the refusal must come before any is looked for.
        psi.Environment.Remove("BACKUPD_CONFIG");
        using var p = Process.Start(psi)!;
        var stdout = p.StandardOutput.ReadToEndAsync();
        var stderr = p.StandardError.ReadToEndAsync();
        p.WaitForExit();
        return (p.ExitCode, stdout.Result, stderr.Result);
    }

    /// <summary>Every (form, option of the other form) pair, with a valid value for the option.</summary>
    public static TheoryData<string, string, string> Pairs => new()
    {
        { "--domain", "--block-size", "1MiB" },
        { "--file", "--disk", "vda" },
        { "--file", "--exclude-disk", "vdb" },
        { "--file", "--quiesce", "off" },
        { "--file", "--bandwidth", "50M" },
        { "--file", "--no-catalog", "" },
    };

    private string[] Args(string form, string option, string value, bool json)
    {
        var args = new List<string> { "backup", form, form == "--domain" ? "bkd-no-such-domain" : Image(), "--to", Repository, option };
        if (value.Length > 0) args.Add(value);
        if (json) args.Add("--json");
        return [.. args];
    }

    [Theory]
    [MemberData(nameof(Pairs))]
    public void An_option_of_the_other_form_is_refused_with_exit_2_naming_option_and_form(string form, string option, string value)
    {
        var run = Run(Args(form, option, value, json: false));

        Assert.Equal(ExitCodes.UsageOrConfig, run.Code);
        Assert.Contains($"backupd backup: {option} does not apply to a backup with {form}", run.Err, StringComparison.Ordinal);
        Assert.Empty(run.Out);
        Assert.False(Directory.Exists(Repository), "nothing may be created");
    }

    [Theory]
    [MemberData(nameof(Pairs))]
    public void With_json_the_refusal_is_one_error_object_on_stdout(string form, string option, string value)
    {
        var run = Run(Args(form, option, value, json: true));

        Assert.Equal(ExitCodes.UsageOrConfig, run.Code);
        var error = SingleObject(run.Out);
        Assert.Equal("usage", error.GetProperty("kind").GetString());
        Assert.Equal(2, error.GetProperty("exitCode").GetInt32());
        Assert.StartsWith($"{option} does not apply to a backup with {form}", error.GetProperty("error").GetString(), StringComparison.Ordinal);
    }

    [Fact]
    public void The_table_names_every_option_of_backup_that_belongs_to_one_form_only()
    {
        // An option added to `backup` later must be placed in a form (or be common) for the refusal to cover it.
        var common = new[] { "--domain", "--file", "--to", "--json", "--config", "--reader-wait", "--scrub-cycle" };
        var command = CommandTree.Build().Subcommands.Single(c => c.Name == "backup");
        var placed = BackupCommand.FormOptions.SelectMany(f => f.Options).Select(o => o.Name).ToHashSet();
        Assert.All(command.Options.Where(o => !o.Name.StartsWith("-h", StringComparison.Ordinal) && o.Name != "--help"), o =>
            Assert.True(common.Contains(o.Name) || placed.Contains(o.Name), $"{o.Name} is in no form"));
    }

    [Theory]
    [InlineData("backup", "--json")]
    [InlineData("backup", "--no-such-option", "--json")]
    [InlineData("backup", "--file", "x.img", "--to", "r", "--block-size", "3000", "--json")]
    [InlineData("backup", "--file", "x.img", "--to", "r", "--block-size", "8MiB", "--json")]
    [InlineData("backup", "--domain", "d", "--file", "x.img", "--to", "r", "--json")]
    [InlineData("backup", "--domain", "d", "--to", "r", "--quiesce", "require", "--json")]
    public void Usage_errors_with_json_print_one_error_object_and_exit_2(params string[] args)
    {
        var run = Run(args);

        Assert.Equal(ExitCodes.UsageOrConfig, run.Code);
        var error = SingleObject(run.Out);
        Assert.Equal("usage", error.GetProperty("kind").GetString());
        Assert.Equal(2, error.GetProperty("exitCode").GetInt32());
        Assert.False(string.IsNullOrWhiteSpace(error.GetProperty("error").GetString()));
        Assert.NotEmpty(run.Err); // the operator's line on stderr stays
    }

    [Fact]
    public void A_missing_file_with_json_is_a_not_found_error_object()
    {
        var run = Run("backup", "--file", Path.Combine(_root, "absent.img"), "--to", Repository, "--json");

        Assert.Equal(ExitCodes.NotFound, run.Code);
        var error = SingleObject(run.Out);
        Assert.Equal("not-found", error.GetProperty("kind").GetString());
        Assert.Equal(3, error.GetProperty("exitCode").GetInt32());
        Assert.Contains("absent.img", error.GetProperty("error").GetString(), StringComparison.Ordinal);
    }

    [Fact]
    public void Block_size_takes_sizes_like_a_policy()
    {
        var run = Run("backup", "--file", Image(), "--to", Repository, "--block-size", "1MiB", "--json");

        Assert.True(run.Code == 0, run.Err);
        Assert.Equal(1 << 20, SingleObject(run.Out).GetProperty("blockSize").GetInt32());
    }

    /// <summary>stdout is exactly one JSON object (nothing before or after it); its root.</summary>
    internal static JsonElement SingleObject(string stdout)
    {
        var reader = new Utf8JsonReader(System.Text.Encoding.UTF8.GetBytes(stdout));
        using var document = JsonDocument.ParseValue(ref reader);
        Assert.True(string.IsNullOrWhiteSpace(stdout[(int)reader.BytesConsumed..]), $"more than one JSON value on stdout:\n{stdout}");
        Assert.Equal(JsonValueKind.Object, document.RootElement.ValueKind);
        return document.RootElement.Clone();
    }
}
