using System.Diagnostics;

namespace Backupd.Daemon.Tests.Hosting;

/// <summary>systemd/backupd.service as systemd 252 reads it (`systemd-analyze verify`), not as we hope it reads.</summary>
public sealed class ServiceUnitTests
{
    private static string UnitPath => Path.Combine(ConfigLoaderTests.RepoRoot(), "systemd", "backupd.service");

    [Fact]
    public void Systemd_analyze_verify_reports_nothing_about_the_unit()
    {
        var dir = Directory.CreateTempSubdirectory("bkd-unit-").FullName;
        try
        {
            // A temporary copy whose ExecStart exists: verify checks the binary, which is not installed here.
            var lines = File.ReadAllLines(UnitPath)
                .Select(l => l.StartsWith("ExecStart=", StringComparison.Ordinal) ? "ExecStart=/bin/true" + l[l.IndexOf(' ', StringComparison.Ordinal)..] : l);
            var copy = Path.Combine(dir, "backupd.service");
            File.WriteAllLines(copy, lines);

            var (code, output) = Run("systemd-analyze", "verify", copy);

            // verify exits 0 even for "Invalid syntax, ignoring": every line naming the unit is a finding.
            Assert.True(code == 0, output);
            Assert.DoesNotContain(output.Split('\n'), l => l.Contains("backupd.service", StringComparison.Ordinal));
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }

    [Fact]
    public void The_catalog_credential_has_a_default_so_a_missing_file_does_not_stop_the_start()
    {
        // LoadCredential= of a missing file is fatal (243/CREDENTIALS) unless SetCredential= of the same id gives a default.
        var lines = File.ReadAllLines(UnitPath);
        Assert.Contains("LoadCredential=catalog-connection:/etc/backupd/catalog.conn", lines);
        Assert.Contains(lines, l => l.StartsWith("SetCredential=catalog-connection:", StringComparison.Ordinal) && l.Length > "SetCredential=catalog-connection:".Length);
    }

    private static (int Code, string Output) Run(string file, params string[] args)
    {
        var psi = new ProcessStartInfo(file) { RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (var a in args) psi.ArgumentList.Add(a);
        Process p;
        try { p = Process.Start(psi)!; }
        catch (System.ComponentModel.Win32Exception e)
        {
            throw new InvalidOperationException($"{file} is missing ({e.Message}): apt-get install -y systemd", e);
        }
        using (p)
        {
            var stdout = p.StandardOutput.ReadToEndAsync();
            var stderr = p.StandardError.ReadToEndAsync();
            p.WaitForExit();
            return (p.ExitCode, stdout.Result + stderr.Result);
        }
    }
}
