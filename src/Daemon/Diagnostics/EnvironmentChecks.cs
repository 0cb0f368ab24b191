using System.Diagnostics;
using Backupd.Daemon.Configuration;
using Backupd.Daemon.Libvirt;
using Npgsql;

namespace Backupd.Daemon.Diagnostics;

public sealed record CheckResult(string Name, bool Ok, string Detail, string? Fix = null);

/// <summary>What `backupd doctor` checks: every component a backup needs, each with the command that fixes it.</summary>
public static class EnvironmentChecks
{
    public static async Task<IReadOnlyList<CheckResult>> RunAllAsync(DaemonConfig config, CancellationToken ct)
    {
        var results = new List<CheckResult>
        {
            Libvirt(config.LibvirtUri),
            await QemuImgAsync(ct),
            await CatalogAsync(config.CatalogConnectionString, ct),
            WritableDirectory("state directory", config.StateDirectory, create: true),
        };
        if (config.ScratchDirectory is { } scratch)
            results.Add(WritableDirectory("scratch directory", scratch, create: true));
        results.Add(ReadableDirectory("policies directory", config.PoliciesDirectory));
        return results;
    }

    public static CheckResult Libvirt(string uri)
    {
        try
        {
            using var connection = LibvirtConnection.Open(uri);
            return new CheckResult("libvirt", true, $"{uri}: libvirt {connection.LibraryVersion} (via virConnectGetLibVersion)");
        }
        catch (DllNotFoundException e)
        {
            return new CheckResult("libvirt", false, e.Message, "apt-get install libvirt0 (or scripts/setup-env)");
        }
        catch (LibvirtException e)
        {
            return new CheckResult("libvirt", false, $"{uri}: {e.LibvirtMessage}",
                "start libvirtd: systemctl start libvirtd, or setsid /usr/sbin/virtlogd -d; setsid /usr/sbin/libvirtd -d");
        }
    }

    public static async Task<CheckResult> QemuImgAsync(CancellationToken ct)
    {
        try
        {
            using var process = Process.Start(new ProcessStartInfo("qemu-img", "--version")
            {
                RedirectStandardOutput = true,
                RedirectStandardError = true,
            })!;
            var output = await process.StandardOutput.ReadToEndAsync(ct);
            await process.WaitForExitAsync(ct);
            var firstLine = output.Split('\n', 2)[0].Trim();
            return process.ExitCode == 0
                ? new CheckResult("qemu-img", true, firstLine)
                : new CheckResult("qemu-img", false, $"exit code {process.ExitCode}", "apt-get install qemu-utils");
        }
        catch (System.ComponentModel.Win32Exception)
        {
            return new CheckResult("qemu-img", false, "not found on PATH", "apt-get install qemu-utils");
        }
    }

    public static async Task<CheckResult> CatalogAsync(string connectionString, CancellationToken ct)
    {
        var target = DescribeWithoutSecrets(connectionString);
        try
        {
            await using var connection = new NpgsqlConnection(connectionString);
            using var timeout = CancellationTokenSource.CreateLinkedTokenSource(ct);
            timeout.CancelAfter(TimeSpan.FromSeconds(10));
            await connection.OpenAsync(timeout.Token);
            await using var command = new NpgsqlCommand("show server_version", connection);
            var version = await command.ExecuteScalarAsync(timeout.Token);
            return new CheckResult("catalog", true, $"{target}: PostgreSQL {version}");
        }
        catch (Exception e) when (e is NpgsqlException or OperationCanceledException or ArgumentException or InvalidOperationException)
        {
            return new CheckResult("catalog", false, $"{target}: {e.Message}",
                "start PostgreSQL (pg_ctlcluster 15 main start) and create the role/database (scripts/setup-env does both)");
        }
    }

    /// <summary>Host, port and database only: the connection string may contain a password.</summary>
    public static string DescribeWithoutSecrets(string connectionString)
    {
        try
        {
            var b = new NpgsqlConnectionStringBuilder(connectionString);
            return $"postgresql://{b.Username}@{b.Host}:{b.Port}/{b.Database}";
        }
        catch (ArgumentException)
        {
            return "(unparsable connection string)";
        }
    }

    public static CheckResult WritableDirectory(string name, string path, bool create)
    {
        try
        {
            if (create) Directory.CreateDirectory(path);
            var probe = Path.Combine(path, $".backupd-doctor-{Environment.ProcessId}");
            File.WriteAllText(probe, "probe");
            File.Delete(probe);
            return new CheckResult(name, true, $"{path} is writable");
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return new CheckResult(name, false, $"{path}: {e.Message}", $"mkdir -p {path} and make it writable by the backupd user");
        }
    }

    public static CheckResult ReadableDirectory(string name, string path)
    {
        return Directory.Exists(path)
            ? new CheckResult(name, true, $"{path} exists")
            : new CheckResult(name, false, $"{path} does not exist", $"mkdir -p {path}");
    }
}
