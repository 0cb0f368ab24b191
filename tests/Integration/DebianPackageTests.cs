using System.Diagnostics;
using System.Text.Json;
using Backupd.Integration.Fixtures;

namespace Backupd.Integration;

/// <summary>
/// The Debian package from scripts/package, on this machine: `apt-get install ./backupd_*.deb`, the installed
/// (self-contained) binary passes `backupd doctor` against this machine's libvirtd and PostgreSQL, the unit, man
/// page, completion, user and directories are in place; `apt-get remove` keeps the configuration, `apt-get purge`
/// removes configuration and state but keeps the repositories made here (one of them inside /var/lib/backupd) and
/// the repository key moved to /etc/backupd/keys. $BACKUPD_DEB names a prebuilt package (else the test builds one).
/// </summary>
[Trait("Category", "Integration")]
public sealed class DebianPackageTests(PostgresDatabase database) : IClassFixture<PostgresDatabase>
{
    private const string StateDir = "/var/lib/backupd", ConfigDir = "/etc/backupd", Binary = "/usr/bin/backupd";

    [Fact]
    public async Task Package_installs_passes_doctor_then_remove_and_purge_leave_the_repositories()
    {
        await Requirements.LibvirtAndQemuAsync();
        foreach (var tool in new[] { "/usr/bin/dpkg-deb", "/usr/bin/apt-get" })
            if (!File.Exists(tool)) throw new InvalidOperationException($"{tool} is missing: apt-get install -y dpkg-dev");
        var work = Directory.CreateTempSubdirectory("bkd-deb-").FullName;
        var unique = Path.GetFileName(work);
        var innerRepoRoot = Path.Combine(StateDir, unique); // a repository where purge deletes state: it must survive
        string? keyFile = null;
        try
        {
            var deb = Environment.GetEnvironmentVariable("BACKUPD_DEB") is { Length: > 0 } prebuilt ? prebuilt : await BuildAsync(work);
            Assert.Matches(@"backupd_[0-9.]+_amd64\.deb$", deb);

            var install = await Apt(Path.GetDirectoryName(deb)!, "install", "-y", "./" + Path.GetFileName(deb));
            Assert.True(install.ExitCode == 0, install.Output);
            if (!Directory.Exists("/run/systemd/system"))
                Assert.Contains("systemd is not running (PID 1 is not systemd): the service was not started", install.Output, StringComparison.Ordinal);

            // The files, as installed.
            Assert.Equal("../lib/backupd/backupd", new FileInfo(Binary).LinkTarget);
            Assert.True(File.Exists("/usr/lib/backupd/libcoreclr.so"), "the .NET runtime is bundled");
            var unit = await File.ReadAllTextAsync("/lib/systemd/system/backupd.service");
            Assert.Contains("ExecStart=/usr/bin/backupd --config /etc/backupd/backupd.yaml daemon\n", unit, StringComparison.Ordinal);
            Assert.Contains("u backupd", await File.ReadAllTextAsync("/usr/lib/sysusers.d/backupd.conf"), StringComparison.Ordinal);
            Assert.Contains("d /var/lib/backupd 0750 root backupd", await File.ReadAllTextAsync("/usr/lib/tmpfiles.d/backupd.conf"), StringComparison.Ordinal);
            Assert.Contains("backupd:", (await Tools.TryRunAsync("getent", "passwd", "backupd")).Stdout, StringComparison.Ordinal);
            Assert.True(Directory.Exists(StateDir));
            Assert.True(File.Exists(Path.Combine(ConfigDir, "backupd.yaml")));
            Assert.True(File.Exists(Path.Combine(ConfigDir, "examples/policies.d/20-database.yaml")));
            Assert.Empty(Directory.EnumerateFileSystemEntries(Path.Combine(ConfigDir, "policies.d"))); // no example becomes a schedule
            var conffiles = (await Tools.TryRunAsync("dpkg-query", "--showformat=${Conffiles}", "--show", "backupd")).Stdout;
            Assert.Contains("/etc/backupd/backupd.yaml", conffiles, StringComparison.Ordinal);
            var man = await Tools.TryRunAsync("sh", "-c", "MANWIDTH=100 man -l /usr/share/man/man1/backupd.1.gz 2>&1 | col -b");
            Assert.Contains("backupd doctor [--json]", man.Stdout, StringComparison.Ordinal);
            Assert.Contains("Exit codes", man.Stdout, StringComparison.OrdinalIgnoreCase);
            var completion = await Tools.TryRunAsync("bash", "-c",
                "source /usr/share/bash-completion/completions/backupd; COMP_LINE='backupd pol'; COMP_POINT=11; COMP_WORDS=(backupd pol); COMP_CWORD=1; _backupd; printf '%s\\n' \"${COMPREPLY[@]}\"");
            Assert.Equal("policy", completion.Stdout.Trim());

            // Self-contained: no .NET on the host is consulted (a bogus DOTNET_ROOT changes nothing).
            var version = await Run(Binary, new() { ["DOTNET_ROOT"] = "/nonexistent" }, "--version");
            Assert.True(version.ExitCode == 0, version.Output);
            Assert.Matches(@"^[0-9]+\.[0-9]+\.[0-9]+", version.Output);

            // doctor against this machine's libvirtd and PostgreSQL (the test database, as DoctorTests do).
            using var config = new TempConfig(database.ConnectionString);
            var doctor = await Run(Binary, null, "--config", config.Path, "doctor", "--json");
            Assert.True(doctor.ExitCode == 0, doctor.Output);
            Assert.All(JsonDocument.Parse(doctor.Stdout).RootElement.EnumerateArray(), c => Assert.True(c.GetProperty("ok").GetBoolean(), c.ToString()));

            // Two repositories made by the installed binary: one outside, one inside the state directory; the latter's
            // key moved out to /etc/backupd/keys (what purge must keep). Plus what purge must delete: state and an admin's file.
            var data = Path.Combine(work, "disk.img");
            await File.WriteAllBytesAsync(data, Enumerable.Range(0, 1 << 20).Select(i => (byte)(i * 7)).ToArray());
            var outerRepo = Path.Combine(work, "repo");
            var innerRepo = Path.Combine(innerRepoRoot, "repo");
            foreach (var repo in new[] { outerRepo, innerRepo })
            {
                var backup = await Run(Binary, null, "backup", "--file", data, "--to", repo, "--json");
                Assert.True(backup.ExitCode == 0, backup.Output);
            }
            var moved = await Run(Binary, null, "key", "move-out", "--repository", innerRepo, "--json");
            Assert.True(moved.ExitCode == 0, moved.Output);
            keyFile = JsonDocument.Parse(moved.Stdout).RootElement.GetProperty("keyFile").GetString()!;
            Assert.StartsWith("/etc/backupd/keys/", keyFile, StringComparison.Ordinal);
            Directory.CreateDirectory(Path.Combine(StateDir, "journal"));
            await File.WriteAllTextAsync(Path.Combine(StateDir, "journal", $"{unique}.json"), "{}");
            await File.WriteAllTextAsync(Path.Combine(ConfigDir, "catalog.conn"), "Host=db.example.org;Password=x\n");

            // remove: the program goes, the configuration (conffiles) stays.
            var remove = await Apt(work, "remove", "-y", "backupd");
            Assert.True(remove.ExitCode == 0, remove.Output);
            Assert.False(File.Exists(Binary) || Directory.Exists("/usr/lib/backupd") || File.Exists("/lib/systemd/system/backupd.service"));
            Assert.True(File.Exists(Path.Combine(ConfigDir, "backupd.yaml")));

            // purge: configuration and state go; repositories and keys stay, and they still verify.
            var purge = await Apt(work, "purge", "-y", "backupd");
            Assert.True(purge.ExitCode == 0, purge.Output);
            Assert.Contains($"backupd: purge kept {innerRepoRoot} (it holds a repository)", purge.Output, StringComparison.Ordinal);
            Assert.Contains("backupd: purge kept /etc/backupd/keys", purge.Output, StringComparison.Ordinal);
            Assert.Equal("", (await Tools.TryRunAsync("sh", "-c", "dpkg-query -W -f='${Status}' backupd 2>/dev/null | grep ' installed$' || true")).Stdout.Trim());
            Assert.False(File.Exists(Path.Combine(ConfigDir, "backupd.yaml")));
            Assert.False(File.Exists(Path.Combine(ConfigDir, "catalog.conn")));
            Assert.False(Directory.Exists(Path.Combine(ConfigDir, "examples")));
            Assert.False(Directory.Exists(Path.Combine(StateDir, "journal")));
            Assert.True(File.Exists(keyFile));
            foreach (var repo in new[] { outerRepo, innerRepo })
            {
                var verify = await BackupdProcess.RunAsync("verify", "--repository", repo, "--json");
                Assert.True(verify.ExitCode == 0, $"{repo}: {verify.Stdout}{verify.Stderr}");
                Assert.True(JsonDocument.Parse(verify.Stdout).RootElement.GetProperty("ok").GetBoolean());
            }
        }
        finally
        {
            await Tools.TryRunAsync("sh", "-c", "dpkg-query -W -f='${Status}' backupd 2>/dev/null | grep -q 'installed$' && apt-get -o DPkg::Lock::Timeout=300 purge -y backupd >/dev/null 2>&1; true");
            if (keyFile is not null && File.Exists(keyFile)) File.Delete(keyFile);
            foreach (var dir in new[] { Path.Combine(ConfigDir, "keys"), ConfigDir })
                if (Directory.Exists(dir) && !Directory.EnumerateFileSystemEntries(dir).Any()) Directory.Delete(dir);
            if (Directory.Exists(innerRepoRoot)) Directory.Delete(innerRepoRoot, recursive: true);
            if (Directory.Exists(StateDir) && !Directory.EnumerateFileSystemEntries(StateDir).Any()) Directory.Delete(StateDir);
            Directory.Delete(work, recursive: true);
        }
    }

    /// <summary>scripts/package into <paramref name="dir"/>; prints the package's size (the test output is where CI shows it).</summary>
    private static async Task<string> BuildAsync(string dir)
    {
        var script = Path.Combine(RepoRoot(), "scripts", "package");
        var built = await Run(script, null, dir);
        Assert.True(built.ExitCode == 0, built.Output);
        var deb = built.Stdout.Trim().Split('\n')[^1];
        Console.WriteLine($"{deb}: {new FileInfo(deb).Length} bytes");
        return deb;
    }

    private static string RepoRoot()
    {
        var dir = new DirectoryInfo(AppContext.BaseDirectory);
        while (dir is not null && !File.Exists(Path.Combine(dir.FullName, "BackupDaemon.sln"))) dir = dir.Parent;
        return dir?.FullName ?? throw new InvalidOperationException("BackupDaemon.sln not found above " + AppContext.BaseDirectory);
    }

    private static Task<(int ExitCode, string Stdout, string Output)> Apt(string directory, params string[] args) =>
        Run("apt-get", new() { ["DEBIAN_FRONTEND"] = "noninteractive" }, ["-o", "DPkg::Lock::Timeout=300", .. args], directory);

    private static Task<(int ExitCode, string Stdout, string Output)> Run(string file, Dictionary<string, string>? environment, params string[] args) =>
        Run(file, environment, args, null);

    /// <summary>Runs a program; Output is stdout and stderr together (for messages), Stdout alone (for JSON).</summary>
    private static async Task<(int ExitCode, string Stdout, string Output)> Run(string file, Dictionary<string, string>? environment, string[] args, string? directory)
    {
        var info = new ProcessStartInfo(file) { RedirectStandardOutput = true, RedirectStandardError = true, WorkingDirectory = directory ?? "" };
        foreach (var a in args) info.ArgumentList.Add(a);
        info.Environment.Remove("BACKUPD_CONFIG");
        info.Environment.Remove("BACKUPD_KEY_DIRECTORY");
        if (environment is not null) foreach (var (k, v) in environment) info.Environment[k] = v;
        using var p = Process.Start(info)!;
        var stdout = p.StandardOutput.ReadToEndAsync();
        var stderr = p.StandardError.ReadToEndAsync();
        using var timeout = new CancellationTokenSource(TimeSpan.FromMinutes(20));
        await p.WaitForExitAsync(timeout.Token);
        return (p.ExitCode, await stdout, await stdout + await stderr);
    }
}
