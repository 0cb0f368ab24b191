using Backupd.Daemon.Cli;
using Backupd.Daemon.Restore;
using CsCheck;

namespace Backupd.Daemon.Tests.Restore;

public sealed class RestoreDirectoryTests : IDisposable
{
    private readonly string _root = Directory.CreateTempSubdirectory("bkd-restoredir-").FullName;

    public void Dispose() => Directory.Delete(_root, recursive: true);

    [Fact]
    public void A_missing_directory_is_created_and_files_resolve_inside_it()
    {
        var target = RestoreDirectory.Prepare(Path.Combine(_root, "a", "b"), ["vda.qcow2"], create: true);

        Assert.True(Directory.Exists(target.Path));
        Assert.Equal(Path.Combine(_root, "a", "b", "vda.qcow2"), target.PathOf("vda.qcow2"));
    }

    [Fact]
    public void An_existing_file_is_never_overwritten()
    {
        File.WriteAllText(Path.Combine(_root, "vda.qcow2"), "precious");

        var error = Assert.Throws<RestoreException>(() => RestoreDirectory.Prepare(_root, ["vda.qcow2"], create: true));

        Assert.Contains("refusing to overwrite", error.Message, StringComparison.Ordinal);
        Assert.Equal("precious", File.ReadAllText(Path.Combine(_root, "vda.qcow2")));
    }

    [Fact]
    public void A_symlinked_parent_is_refused_and_nothing_is_created_behind_it()
    {
        var elsewhere = Directory.CreateDirectory(Path.Combine(_root, "elsewhere")).FullName;
        Directory.CreateSymbolicLink(Path.Combine(_root, "link"), elsewhere);

        var error = Assert.Throws<RestoreException>(() => RestoreDirectory.Prepare(Path.Combine(_root, "link", "sub"), ["vda.qcow2"], create: true));

        Assert.Contains("symbolic link", error.Message, StringComparison.Ordinal);
        Assert.Empty(Directory.EnumerateFileSystemEntries(elsewhere));
    }

    [Fact]
    public void A_symlinked_target_directory_itself_is_refused()
    {
        Directory.CreateSymbolicLink(Path.Combine(_root, "t"), Directory.CreateDirectory(Path.Combine(_root, "real")).FullName);
        Assert.Throws<RestoreException>(() => RestoreDirectory.Prepare(Path.Combine(_root, "t"), ["vda.qcow2"], create: false));
    }

    [Theory]
    [InlineData("../vda.qcow2")]
    [InlineData("..")]
    [InlineData("/etc/passwd")]
    [InlineData("sub/vda.qcow2")]
    public void File_names_that_leave_the_directory_are_refused(string name)
    {
        var error = Assert.Throws<RestoreException>(() => RestoreDirectory.Prepare(_root, [name], create: false));
        Assert.Equal(FailureKind.Usage, error.Kind);
    }

    [Fact]
    public void Whatever_the_name_a_path_is_refused_or_directly_inside_the_directory()
    {
        var target = RestoreDirectory.Prepare(_root, [], create: false);
        Gen.String[Gen.Char['\0', '\u00ff'], 0, 12].Sample(name =>
        {
            try
            {
                return Path.GetDirectoryName(target.PathOf(name)) == _root;
            }
            catch (RestoreException)
            {
                return true;
            }
        });
    }
}
