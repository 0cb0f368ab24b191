using System.Diagnostics;
using System.Text;

namespace Backupd.Integration.Fixtures;

/// <summary>
/// Runs the real `backupd` executable as a child process (the build copies backupd.dll beside the tests),
/// for tests that check exit codes and output, or kill the process mid-run.
/// </summary>
public static class BackupdProcess
{
    public static string DllPath => Path.Combine(AppContext.BaseDirectory, "backupd.dll");

    public static ProcessStartInfo StartInfo(IDictionary<string, string>? environment, params string[] args)
    {
        var info = new ProcessStartInfo("dotnet")
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            StandardOutputEncoding = Encoding.UTF8,
            StandardErrorEncoding = Encoding.UTF8,
        };
        info.ArgumentList.Add(DllPath);
        foreach (var a in args) info.ArgumentList.Add(a);
        info.Environment.Remove("BACKUPD_CONFIG");
        info.Environment.Remove("BACKUPD_FAULT");
        if (environment is not null)
            foreach (var (k, v) in environment) info.Environment[k] = v;
        return info;
    }

    /// <summary>Starts backupd (e.g. the daemon) and collects every stdout and stderr line into <paramref name="output"/>.</summary>
    public static Process StartCollecting(IDictionary<string, string>? environment, out System.Collections.Concurrent.ConcurrentQueue<string> output, params string[] args)
    {
        var process = Process.Start(StartInfo(environment, args))!;
        var lines = new System.Collections.Concurrent.ConcurrentQueue<string>();
        process.OutputDataReceived += (_, e) => { if (e.Data is not null) lines.Enqueue(e.Data); };
        process.ErrorDataReceived += (_, e) => { if (e.Data is not null) lines.Enqueue(e.Data); };
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        output = lines;
        return process;
    }

    public static Task<(int ExitCode, string Stdout, string Stderr)> RunAsync(params string[] args) => RunAsync(null, args);

    /// <summary>True once the process is in the stopped state ('T' in /proc/PID/stat, after the command's parentheses).</summary>
    public static bool IsStopped(int pid)
    {
        try
        {
            var stat = File.ReadAllText($"/proc/{pid}/stat");
            return stat[(stat.LastIndexOf(')') + 2)..].StartsWith('T');
        }
        catch (IOException)
        {
            return false;
        }
    }

    public static async Task<(int ExitCode, string Stdout, string Stderr)> RunAsync(IDictionary<string, string>? environment, params string[] args)
    {
        using var process = Process.Start(StartInfo(environment, args))!;
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = process.StandardError.ReadToEndAsync();
        using var timeout = new CancellationTokenSource(TimeSpan.FromMinutes(10));
        try
        {
            await process.WaitForExitAsync(timeout.Token);
        }
        catch (OperationCanceledException)
        {
            process.Kill(entireProcessTree: true);
            throw new TimeoutException($"backupd {string.Join(' ', args)} did not finish in 10 minutes");
        }
        return (process.ExitCode, await stdout, await stderr);
    }
}

/// <summary>A temporary daemon configuration file pointing at the test catalog and private directories.</summary>
public sealed class TempConfig : IDisposable
{
    public string Directory { get; } = System.IO.Directory.CreateTempSubdirectory("bkd-config-").FullName;
    public string Path => System.IO.Path.Combine(Directory, "backupd.yaml");
    public string StateDirectory => System.IO.Path.Combine(Directory, "state");
    public string PoliciesDirectory => System.IO.Path.Combine(Directory, "policies.d");

    public TempConfig(string catalogConnection, string extra = "")
    {
        System.IO.Directory.CreateDirectory(PoliciesDirectory);
        File.WriteAllText(Path, $"""
            libvirt-uri: qemu:///system
            catalog-connection: "{catalogConnection}"
            state-directory: {StateDirectory}
            policies-directory: {PoliciesDirectory}
            {extra}
            """);
    }

    public void Dispose()
    {
        try { System.IO.Directory.Delete(Directory, recursive: true); }
        catch (DirectoryNotFoundException) { }
    }
}
