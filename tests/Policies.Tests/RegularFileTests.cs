using System.Diagnostics;
using System.Net.Sockets;
using Backupd.Policies.Loading;

namespace Backupd.Policies.Tests;

/// <summary>
/// Policy files that are not files: each is refused quickly with its path and what it is, and never
/// blocks or fills memory. Every load runs under a deadline so a regression fails instead of hanging.
/// </summary>
public sealed class RegularFileTests : IDisposable
{
    private static readonly TimeSpan Deadline = TimeSpan.FromSeconds(10);
    private readonly string _dir = Directory.CreateTempSubdirectory("bkd-regular-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    private static PolicyFileResult LoadWithin(string path) => Task.Run(() => PolicyLoader.LoadFile(path)).WaitAsync(Deadline).GetAwaiter().GetResult();

    private string Fifo(string name)
    {
        var path = Path.Combine(_dir, name);
        using var mkfifo = Process.Start("mkfifo", [path]);
        mkfifo.WaitForExit();
        Assert.Equal(0, mkfifo.ExitCode);
        return path;
    }

    [Fact]
    public void A_fifo_is_refused_without_waiting_for_a_writer()
    {
        var path = Fifo("pipe.yaml");

        var error = Assert.Single(LoadWithin(path).Errors);

        Assert.Equal($"{path}:1:1: is a FIFO (named pipe), not a regular file; only regular files are read", error.ToString());
    }

    [Fact]
    public void A_symlink_to_a_fifo_is_refused_too()
    {
        var fifo = Fifo("target-pipe");
        var link = Path.Combine(_dir, "link.yaml");
        File.CreateSymbolicLink(link, fifo);

        Assert.Contains("is a FIFO", Assert.Single(LoadWithin(link).Errors).Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_symlink_to_dev_zero_is_refused_before_anything_is_read()
    {
        var link = Path.Combine(_dir, "zero.yaml");
        File.CreateSymbolicLink(link, "/dev/zero");

        // Counted on the loading thread only: the process-wide count includes test classes running in parallel.
        var (result, allocated) = await Task.Run(() =>
        {
            var before = GC.GetAllocatedBytesForCurrentThread();
            var loaded = PolicyLoader.LoadFile(link);
            return (loaded, GC.GetAllocatedBytesForCurrentThread() - before);
        }).WaitAsync(Deadline);

        var error = Assert.Single(result.Errors);
        Assert.Equal($"{link}:1:1: is a character device, not a regular file; only regular files are read", error.ToString());
        Assert.True(allocated < 16 << 20, $"the loader allocated {allocated} bytes, as if it had read the device");
    }

    [Fact]
    public void A_directory_named_like_a_policy_file_is_listed_and_reported()
    {
        Directory.CreateDirectory(Path.Combine(_dir, "x.yaml"));
        File.WriteAllText(Path.Combine(_dir, "ok.yaml"), "name: ok\ndomains: [a]\nschedule: hourly\nrepository: /srv/a\n");

        var set = PolicyLoader.LoadDirectory(_dir);

        Assert.Equal(["ok.yaml", "x.yaml"], set.Files.Select(f => Path.GetFileName(f.Path)));
        var error = Assert.Single(set.Errors);
        Assert.Equal($"{Path.Combine(_dir, "x.yaml")}:1:1: is a directory, not a regular file; only regular files are read", error.ToString());
        Assert.Equal(["ok"], set.Policies.Select(p => p.Name));
    }

    [Fact]
    public void A_socket_is_refused()
    {
        var path = Path.Combine(_dir, "sock.yaml");
        using var socket = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
        socket.Bind(new UnixDomainSocketEndPoint(path));

        Assert.Contains("is a socket", Assert.Single(LoadWithin(path).Errors).Message, StringComparison.Ordinal);
    }

    [Fact]
    public void A_file_over_the_limit_is_refused_by_its_size_and_the_reader_never_returns_more()
    {
        var path = Path.Combine(_dir, "big.yaml");
        File.WriteAllBytes(path, new byte[4097]);

        var e = Assert.Throws<FileRefusedException>(() => RegularFile.ReadAll(path, 4096));

        Assert.Equal(FileRefusal.TooLarge, e.Refusal);
        Assert.Equal($"{path}: file is 4097 bytes; at most 4096 bytes are read", e.Message);
        Assert.Equal(4097, RegularFile.ReadAll(path, 4097).Length); // exactly at the limit is fine
    }

    [Fact]
    public void A_file_that_holds_more_than_its_size_says_is_cut_off_at_the_limit()
    {
        // /proc files are regular files of size 0 with content: like a file growing while it is read.
        var e = Assert.Throws<FileRefusedException>(() => RegularFile.ReadAll("/proc/self/status", 64));

        Assert.Equal(FileRefusal.TooLarge, e.Refusal);
        Assert.Equal("/proc/self/status: file grew past 64 bytes while it was read; at most 64 bytes are read", e.Message);
        Assert.Contains("VmHWM", System.Text.Encoding.ASCII.GetString(RegularFile.ReadAll("/proc/self/status", 1 << 20)), StringComparison.Ordinal);
    }

    [Fact]
    public void A_regular_file_and_a_symlink_to_one_are_read_whole()
    {
        var path = Path.Combine(_dir, "a.yaml");
        var bytes = Enumerable.Range(0, 70_000).Select(i => (byte)i).ToArray();
        File.WriteAllBytes(path, bytes);
        var link = Path.Combine(_dir, "b.yaml");
        File.CreateSymbolicLink(link, path);

        Assert.Equal(bytes, RegularFile.ReadAll(path, 100_000));
        Assert.Equal(bytes, RegularFile.ReadAll(link, 100_000));
        File.WriteAllBytes(Path.Combine(_dir, "empty"), []);
        Assert.Empty(RegularFile.ReadAll(Path.Combine(_dir, "empty"), 10));
    }

    [Fact]
    public void Missing_and_unreadable_paths_are_named()
    {
        var missing = Path.Combine(_dir, "nope", "x.yaml");

        var e = Assert.Throws<FileRefusedException>(() => RegularFile.ReadAll(missing, 10));

        Assert.Equal(FileRefusal.NotFound, e.Refusal);
        Assert.Equal($"{missing}: file not found", e.Message);
    }
}
