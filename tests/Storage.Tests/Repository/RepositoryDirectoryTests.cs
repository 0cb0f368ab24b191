using System.Diagnostics;
using Backupd.Storage.Repository;

namespace Backupd.Storage.Tests.Repository;

/// <summary>
/// The one door to repository files, with openat2 and with the per-component openat(O_NOFOLLOW) walk used where
/// the kernel has no openat2: links and ".." never lead out, for reads, writes, creates, renames and deletes.
/// </summary>
public sealed class RepositoryDirectoryTests : IDisposable
{
    private readonly string _root = Path.Combine(Path.GetTempPath(), $"bkd-beneath-{Guid.NewGuid():N}");
    private readonly string _repo;
    private readonly string _outside;

    public RepositoryDirectoryTests()
    {
        _repo = Path.Combine(_root, "repo");
        _outside = Path.Combine(_root, "outside");
        Directory.CreateDirectory(Path.Combine(_repo, "d"));
        Directory.CreateDirectory(_outside);
        File.WriteAllText(Path.Combine(_outside, "victim"), "victim");
        Directory.CreateDirectory(Path.Combine(_outside, "tree"));
        File.WriteAllText(Path.Combine(_outside, "tree", "keep"), "keep");
        File.CreateSymbolicLink(Path.Combine(_repo, "link-dir"), _outside);
        File.CreateSymbolicLink(Path.Combine(_repo, "d", "link-file"), Path.Combine(_outside, "victim"));
    }

    public static TheoryData<bool> Modes => new() { false, true };

    [Theory]
    [MemberData(nameof(Modes))]
    public void Plain_files_and_directories_work(bool componentWalk)
    {
        using var beneath = new RepositoryDirectory(_repo, componentWalk);
        beneath.CreateDirectory(P("a/b/c"));
        beneath.WriteFile(P("a/b/c/doc"), "hello"u8);
        Assert.Equal("hello"u8.ToArray(), beneath.ReadAll(P("a/b/c/doc"), 100));
        beneath.Rename(P("a/b/c/doc"), P("a/doc"));
        Assert.True(beneath.FileExists(P("a/doc")));
        Assert.False(beneath.FileExists(P("a/b/c/doc")));
        Assert.Equal(EntryKind.Directory, beneath.Kind(P("a/b")));
        Assert.Equal(EntryKind.Missing, beneath.Kind(P("x/y/z")));
        using (var s = beneath.OpenStream(P("a/b/data"), FileMode.CreateNew, FileAccess.ReadWrite))
        {
            s.Write([1, 2, 3]);
        }
        Assert.Contains(("data", EntryKind.File), beneath.List(P("a/b")));
        beneath.DeleteTree(P("a"));
        Assert.False(Directory.Exists(P("a")));
        Assert.Throws<RepositoryCorruptException>(() => beneath.ReadAll(P("d/link-file"), 100));
    }

    [Theory]
    [MemberData(nameof(Modes))]
    public void Links_and_dot_dot_never_lead_outside(bool componentWalk)
    {
        var before = HostileRepository.Snapshot(_outside);
        using var beneath = new RepositoryDirectory(_repo, componentWalk);
        AssertRefused(() => beneath.ReadAll(P("link-dir/victim"), 100), "link-dir/victim");
        AssertRefused(() => beneath.OpenFile(P("d/link-file"), FileMode.Open, FileAccess.ReadWrite), "d/link-file");
        AssertRefused(() => beneath.OpenFile(P("link-dir/new"), FileMode.CreateNew, FileAccess.Write), "link-dir/new");
        AssertRefused(() => beneath.WriteFile(P("link-dir/victim"), "pwned"u8), "link-dir/victim");
        AssertRefused(() => beneath.WriteFile(P("d/../../outside/victim"), "pwned"u8), "..");
        AssertRefused(() => beneath.CreateDirectory(P("link-dir/made")), "link-dir");
        AssertRefused(() => beneath.Delete(P("link-dir/victim")), "link-dir/victim");
        AssertRefused(() => beneath.DeleteTree(P("link-dir")), "link-dir");
        AssertRefused(() => beneath.DeleteTree(P("link-dir/tree")), "link-dir/tree");
        AssertRefused(() => beneath.Rename(P("link-dir/victim"), P("d/stolen")), "link-dir/victim");
        AssertRefused(() => beneath.FsyncDirectory(P("link-dir")), "link-dir");
        AssertRefused(() => beneath.ReadAll(Path.Combine(_outside, "victim"), 100), "not inside the repository");
        AssertRefused(() => beneath.ReadAll(_repo + "/d//x", 100), "empty");
        Assert.Throws<RepositoryCorruptException>(() => beneath.FileExists(P("d/link-file")));
        Assert.Throws<RepositoryCorruptException>(() => beneath.DirectoryExists(P("link-dir")));
        Assert.Equal(before, HostileRepository.Snapshot(_outside));
    }

    [Fact]
    public void Deleting_a_tree_removes_links_inside_it_but_never_what_they_point_to()
    {
        var before = HostileRepository.Snapshot(_outside);
        using var beneath = new RepositoryDirectory(_repo);
        Directory.CreateDirectory(P("t/u"));
        File.CreateSymbolicLink(P("t/u/out"), Path.Combine(_outside, "tree"));
        File.WriteAllText(P("t/u/f"), "f");
        beneath.DeleteTree(P("t"));
        Assert.False(Directory.Exists(P("t")));
        Assert.Equal(before, HostileRepository.Snapshot(_outside));
    }

    [Fact]
    public void A_file_with_another_hard_link_is_never_opened_for_writing()
    {
        using var beneath = new RepositoryDirectory(_repo);
        File.WriteAllText(P("d/shared"), "shared");
        using (var ln = Process.Start("ln", [P("d/shared"), Path.Combine(_outside, "hardlink")]))
        {
            ln.WaitForExit();
            Assert.Equal(0, ln.ExitCode);
        }
        var e = Assert.Throws<RepositoryCorruptException>(() => beneath.OpenFile(P("d/shared"), FileMode.Create, FileAccess.Write));
        Assert.Contains("hard links", e.Message, StringComparison.Ordinal);
        Assert.Equal("shared", File.ReadAllText(Path.Combine(_outside, "hardlink")));
    }

    /// <summary>Issue 16 (5): a publication that fails on a full file system leaves no *.tmp behind.</summary>
    [Trait("Category", "Integration")] // mounts a tmpfs: needs root
    [Fact]
    public void A_publication_failing_on_a_full_file_system_removes_its_temp_file()
    {
        var mount = Path.Combine(_root, "small");
        Directory.CreateDirectory(mount);
        Run("mount", "-t", "tmpfs", "-o", "size=1M", "tmpfs", mount);
        try
        {
            using var beneath = new RepositoryDirectory(mount);
            beneath.WriteFile(mount + "/doc.json", new byte[4096]);
            var e = Assert.Throws<IOException>(() => beneath.WriteFile(mount + "/doc.json", new byte[2 << 20]));
            Assert.Contains("space", e.Message, StringComparison.OrdinalIgnoreCase);
            Assert.Equal(["doc.json"], Directory.GetFileSystemEntries(mount).Select(Path.GetFileName));
            Assert.Equal(4096, new FileInfo(mount + "/doc.json").Length); // the old document is still the published one
        }
        finally
        {
            Run("umount", mount);
        }
    }

    public void Dispose() => Directory.Delete(_root, recursive: true);

    private string P(string relative) => Path.Combine(_repo, relative);

    private static void AssertRefused(Action action, string mentioned)
    {
        var e = Assert.Throws<RepositoryCorruptException>(action);
        Assert.Contains(mentioned, e.Message, StringComparison.Ordinal);
    }

    internal static void Run(string file, params string[] args)
    {
        using var p = Process.Start(new ProcessStartInfo(file, args) { RedirectStandardError = true })
            ?? throw new InvalidOperationException($"cannot start {file}");
        var err = p.StandardError.ReadToEnd();
        p.WaitForExit();
        Assert.True(p.ExitCode == 0, $"{file} {string.Join(' ', args)} exited {p.ExitCode}: {err} (these tests run as root, like backupd)");
    }
}
