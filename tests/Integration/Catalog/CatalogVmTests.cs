using System.Text.Json;
using Backupd.Daemon.Images;
using Backupd.Daemon.Restore;
using Backupd.Integration.Fixtures;
using Backupd.Storage.Catalog;

namespace Backupd.Integration.Catalog;

/// <summary>
/// A running VM (vda: linked clone of a template, vdb: raw) backed up three times with `backupd backup
/// --domain` (through the catalog, the default with a configuration), the guest writing between runs; then shut off. Region k (at 2k MiB of vda, k MiB of vdb)
/// holds pattern k from backup k on, so the guest view at each snapshot is known exactly.
/// </summary>
[Trait("Category", "Integration")]
public sealed class ThreePointsFixture : IAsyncLifetime
{
    public const long MiB = TestVm.MiB;
    private readonly PostgresDatabase _database = new();

    public TestVm Vm { get; private set; } = null!;
    public TempConfig Config { get; private set; } = null!;
    public string Repository => Path.Combine(Config.Directory, "repo");
    public string ConnectionString => _database.ConnectionString;
    /// <summary>Point ids, oldest first.</summary>
    public List<string> Points { get; } = [];
    /// <summary>vda as the guest saw it after the third backup (flattened, taken with the VM shut off).</summary>
    public string Reference => Path.Combine(Config.Directory, "reference3.qcow2");

    public static byte VdaPattern(int k) => (byte)(0x20 + k);
    public static byte VdbPattern(int k) => (byte)(0x30 + k);

    public async Task InitializeAsync()
    {
        await _database.InitializeAsync();
        Config = new TempConfig(_database.ConnectionString);
        Vm = await TestVm.CreateAsync(new DiskSpec("vda", WithTemplate: true), new DiskSpec("vdb", Format: "raw", SizeBytes: 16 * MiB));
        await Vm.StartAsync();
        for (var k = 1; k <= 3; k++)
        {
            await Vm.WriteAsGuestAsync("vda", 2 * k * MiB, VdaPattern(k), MiB);
            await Vm.WriteAsGuestAsync("vdb", k * MiB, VdbPattern(k), MiB);
            var run = await Backupd("backup", "--domain", Vm.Name, "--to", Repository, "--json");
            Assert.True(run.ExitCode == 0, $"backup {k} exited {run.ExitCode}: {run.Stderr}");
            var result = JsonDocument.Parse(run.Stdout).RootElement;
            Points.Add(result.GetProperty("restorePointId").GetString()!);
            Assert.True(result.GetProperty("catalogRunId").GetInt64() > 0);
        }
        await Vm.DestroyAsync();
        await Tools.RunAsync("qemu-img", "convert", "-O", "qcow2", Vm.Disk("vda").Path, Reference);
    }

    public async Task DisposeAsync()
    {
        await Vm.DisposeAsync();
        Config.Dispose();
        await _database.DisposeAsync();
    }

    public Task<(int ExitCode, string Stdout, string Stderr)> Backupd(params string[] args) =>
        BackupdProcess.RunAsync(["--config", Config.Path, .. args]);

    /// <summary>Checks a restored vda/vdb pair shows exactly what the guest had written up to backup <paramref name="point"/> (1-based).</summary>
    public static async Task AssertGuestViewAsync(string vda, string? vdb, int point)
    {
        Assert.True(await TestVm.ImageMatchesAsync(vda, "qcow2", 0, MiB, 0x11), "template data");
        Assert.True(await TestVm.ImageMatchesAsync(vda, "qcow2", MiB, MiB, 0x12), "base data");
        for (var k = 1; k <= 3; k++)
        {
            var expected = k <= point ? VdaPattern(k) : (byte)0;
            Assert.True(await TestVm.ImageMatchesAsync(vda, "qcow2", 2 * k * MiB, MiB, expected), $"vda region {k} of point {point}: expected 0x{expected:x2}");
            if (vdb is null) continue;
            var expectedB = k <= point ? VdbPattern(k) : (byte)0;
            Assert.True(await TestVm.ImageMatchesAsync(vdb, "raw", k * MiB, MiB, expectedB), $"vdb region {k} of point {point}: expected 0x{expectedB:x2}");
        }
    }
}

[Trait("Category", "Integration")]
public sealed class CatalogVmTests(ThreePointsFixture f) : IClassFixture<ThreePointsFixture>, IDisposable
{
    private readonly string _out = Directory.CreateTempSubdirectory("bkd-restore-out-").FullName;

    public void Dispose() => Directory.Delete(_out, recursive: true);

    [Fact]
    public async Task List_shows_the_three_points_newest_first_with_their_runs_and_domain_xml()
    {
        var list = await f.Backupd("list", "--domain", f.Vm.Name, "--json");
        Assert.True(list.ExitCode == 0, list.Stderr);
        var points = JsonDocument.Parse(list.Stdout).RootElement.EnumerateArray().ToList();
        Assert.Equal(Enumerable.Reverse(f.Points), points.Select(p => p.GetProperty("id").GetString()));
        Assert.All(points, p => Assert.Equal((2, 3), (p.GetProperty("disks").GetInt32(), p.GetProperty("files").GetInt32())));

        var show = JsonDocument.Parse((await f.Backupd("show", f.Points[0], "--json")).Stdout).RootElement;
        Assert.Contains($"<name>{f.Vm.Name}</name>", show.GetProperty("domainXml").GetString(), StringComparison.Ordinal);
        Assert.Equal("succeeded", show.GetProperty("run").GetProperty("state").GetString());
        Assert.Equal(["vda.0", "vda.1", "vdb.0"], show.GetProperty("files").EnumerateArray().Select(x => x.GetProperty("fileKey").GetString()));

        // list's readMode is what show reports for the disks' top files: one mode when all agree, "mixed" when they differ.
        foreach (var p in points)
        {
            var files = JsonDocument.Parse((await f.Backupd("show", p.GetProperty("id").GetString()!, "--json")).Stdout).RootElement.GetProperty("files");
            var modes = files.EnumerateArray().Where(x => x.GetProperty("depth").GetInt32() == 0)
                .Select(x => x.GetProperty("readMode").GetString() ?? "full").Distinct().ToList();
            Assert.Equal(modes.Count == 1 ? modes[0] : "mixed", p.GetProperty("readMode").GetString());
        }
        // The raw disk (vdb) has no bitmap and is read in full: a point with vda incremental is mixed, never "incremental".
        Assert.NotEqual("incremental", points[0].GetProperty("readMode").GetString());
    }

    [Fact]
    public async Task Each_point_restored_to_a_directory_shows_the_guest_view_at_its_snapshot()
    {
        for (var i = 1; i <= 3; i++)
        {
            var dir = Path.Combine(_out, $"p{i}");
            var run = await f.Backupd("restore", "--domain", f.Vm.Name, "--point", f.Points[i - 1], "--to", dir, "--json");
            Assert.True(run.ExitCode == 0, $"restore of point {i} exited {run.ExitCode}: {run.Stderr}");
            var vda = Path.Combine(dir, "vda.qcow2");
            var info = JsonDocument.Parse(await Tools.RunAsync("qemu-img", "info", "--output=json", vda)).RootElement;
            Assert.Equal(Path.Combine(dir, "vda.1.qcow2"), info.GetProperty("backing-filename").GetString());
            await ThreePointsFixture.AssertGuestViewAsync(vda, Path.Combine(dir, "vdb.raw"), i);
        }
        Assert.True(await QemuImg.CompareAsync(f.Reference, Path.Combine(_out, "p3", "vda.qcow2"), CancellationToken.None));
        Assert.False(await QemuImg.CompareAsync(f.Reference, Path.Combine(_out, "p2", "vda.qcow2"), CancellationToken.None));
    }

    [Fact]
    public async Task At_a_time_picks_the_point_taken_then_and_flatten_gives_one_standalone_image()
    {
        var list = JsonDocument.Parse((await f.Backupd("list", "--domain", f.Vm.Name, "--json")).Stdout).RootElement;
        var second = list.EnumerateArray().Single(p => p.GetProperty("id").GetString() == f.Points[1]);
        var at = second.GetProperty("createdAt").GetDateTime().AddMilliseconds(500).ToString("O");

        var run = await f.Backupd("restore", "--domain", f.Vm.Name, "--at", at, "--disk", "vda", "--flatten", "--to", _out, "--json");

        Assert.True(run.ExitCode == 0, run.Stderr);
        Assert.Equal(f.Points[1], JsonDocument.Parse(run.Stdout).RootElement.GetProperty("pointId").GetString());
        Assert.Equal(["vda.qcow2"], Directory.GetFileSystemEntries(_out).Select(Path.GetFileName));
        var info = JsonDocument.Parse(await Tools.RunAsync("qemu-img", "info", "--output=json", Path.Combine(_out, "vda.qcow2"))).RootElement;
        Assert.False(info.TryGetProperty("backing-filename", out _));
        await ThreePointsFixture.AssertGuestViewAsync(Path.Combine(_out, "vda.qcow2"), null, 2);
    }

    [Fact]
    public async Task Restore_refuses_to_overwrite_to_write_through_a_symlink_or_to_guess_and_changes_nothing()
    {
        var existing = Path.Combine(_out, "vda.qcow2");
        await File.WriteAllTextAsync(existing, "precious");
        var overwrite = await f.Backupd("restore", "--domain", f.Vm.Name, "--to", _out);
        Assert.Equal(2, overwrite.ExitCode);
        Assert.Contains("refusing to overwrite", overwrite.Stderr, StringComparison.Ordinal);
        Assert.Equal("precious", await File.ReadAllTextAsync(existing));
        Assert.Single(Directory.GetFileSystemEntries(_out));

        var elsewhere = Directory.CreateDirectory(Path.Combine(_out, "elsewhere")).FullName;
        Directory.CreateSymbolicLink(Path.Combine(_out, "link"), elsewhere);
        var throughLink = await f.Backupd("restore", "--domain", f.Vm.Name, "--to", Path.Combine(_out, "link", "sub"));
        Assert.Equal(2, throughLink.ExitCode);
        Assert.Contains("symbolic link", throughLink.Stderr, StringComparison.Ordinal);
        Assert.Empty(Directory.GetFileSystemEntries(elsewhere));

        Assert.Equal(2, (await f.Backupd("restore", "--domain", f.Vm.Name, "--in-place")).ExitCode); // no --force
        Assert.Equal(2, (await f.Backupd("restore", "--domain", f.Vm.Name, "--to", Path.Combine(_out, "x"), "--in-place", "--force")).ExitCode);
        Assert.Equal(3, (await f.Backupd("restore", "--domain", f.Vm.Name, "--point", "no-such-point", "--to", Path.Combine(_out, "y"))).ExitCode);
        Assert.Equal(3, (await f.Backupd("restore", "--domain", f.Vm.Name, "--disk", "vdz", "--to", Path.Combine(_out, "z"))).ExitCode);
        Assert.Equal(3, (await f.Backupd("restore", "--domain", "../../etc", "--to", Path.Combine(_out, "w"))).ExitCode);
        Assert.False(Directory.Exists(Path.Combine(_out, "x")));
    }

    [Fact]
    public async Task As_domain_defines_a_new_domain_on_the_restored_images_that_starts()
    {
        var name = $"bkd-{Guid.NewGuid():N}"[..12] + "-copy";
        try
        {
            var run = await f.Backupd("restore", "--domain", f.Vm.Name, "--point", f.Points[0], "--as-domain", name, "--json");
            Assert.True(run.ExitCode == 0, run.Stderr);
            var result = JsonDocument.Parse(run.Stdout).RootElement;
            Assert.Equal("shut off", (await Tools.Virsh("domstate", name)).Trim());
            var xml = await Tools.Virsh("dumpxml", "--inactive", name);
            Assert.Contains(result.GetProperty("newDomainUuid").GetString()!, xml, StringComparison.Ordinal);
            Assert.DoesNotContain(f.Vm.Uuid, xml, StringComparison.Ordinal);
            Assert.DoesNotContain($"'{f.Vm.Disk("vda").Path}'", xml, StringComparison.Ordinal);
            Assert.Contains(Path.Combine(f.Vm.Directory, name, "vda.qcow2"), xml, StringComparison.Ordinal);

            await Tools.Virsh("start", name);
            Assert.Equal("running", (await Tools.Virsh("domstate", name)).Trim());
            await ThreePointsFixture.AssertGuestViewAsync(Path.Combine(f.Vm.Directory, name, "vda.qcow2"), Path.Combine(f.Vm.Directory, name, "vdb.raw"), 1);

            var again = await f.Backupd("restore", "--domain", f.Vm.Name, "--as-domain", name);
            Assert.Equal(2, again.ExitCode);
            Assert.Contains("already exists", again.Stderr, StringComparison.Ordinal);
        }
        finally
        {
            await Tools.TryRunAsync("virsh", "-c", "qemu:///system", "destroy", name);
            await Tools.TryRunAsync("virsh", "-c", "qemu:///system", "undefine", "--checkpoints-metadata", name);
        }
    }

    [Fact]
    public async Task As_domain_with_images_dir_puts_the_images_there_and_refuses_overwrites_and_symlinked_parents()
    {
        var name = $"bkd-{Guid.NewGuid():N}"[..12] + "-img";
        var other = name + "2";
        var images = Path.Combine(_out, "images");
        var real = Directory.CreateDirectory(Path.Combine(_out, "real")).FullName;
        var link = Path.Combine(_out, "link");
        File.CreateSymbolicLink(link, real);
        try
        {
            // Only with --as-domain.
            Assert.Equal(2, (await f.Backupd("restore", "--domain", f.Vm.Name, "--to", Path.Combine(_out, "t"), "--images-dir", images)).ExitCode);

            // A symlinked parent: refused before anything is written or defined.
            var linked = await f.Backupd("restore", "--domain", f.Vm.Name, "--as-domain", other, "--images-dir", Path.Combine(link, "imgs"));
            Assert.Equal(2, linked.ExitCode);
            Assert.Contains("symbolic link", linked.Stderr, StringComparison.Ordinal);
            Assert.Empty(Directory.EnumerateFileSystemEntries(real));
            Assert.Equal(1, (await Tools.TryRunAsync("virsh", "-c", "qemu:///system", "dominfo", other)).ExitCode);

            var run = await f.Backupd("restore", "--domain", f.Vm.Name, "--point", f.Points[1], "--as-domain", name, "--images-dir", images, "--json");
            Assert.True(run.ExitCode == 0, run.Stderr);
            var xml = await Tools.Virsh("dumpxml", "--inactive", name);
            Assert.Contains($"'{Path.Combine(images, "vda.qcow2")}'", xml.Replace('"', '\''), StringComparison.Ordinal);
            Assert.Contains($"'{Path.Combine(images, "vdb.raw")}'", xml.Replace('"', '\''), StringComparison.Ordinal);
            Assert.False(Directory.Exists(Path.Combine(f.Vm.Directory, name))); // not the default place
            await ThreePointsFixture.AssertGuestViewAsync(Path.Combine(images, "vda.qcow2"), Path.Combine(images, "vdb.raw"), 2);

            // The same directory again: the files exist, so nothing is overwritten and no domain is defined.
            var before = File.GetLastWriteTimeUtc(Path.Combine(images, "vda.qcow2"));
            var again = await f.Backupd("restore", "--domain", f.Vm.Name, "--as-domain", other, "--images-dir", images);
            Assert.Equal(2, again.ExitCode);
            Assert.Contains("refusing to overwrite", again.Stderr, StringComparison.Ordinal);
            Assert.Equal(before, File.GetLastWriteTimeUtc(Path.Combine(images, "vda.qcow2")));
            Assert.Equal(1, (await Tools.TryRunAsync("virsh", "-c", "qemu:///system", "dominfo", other)).ExitCode);
        }
        finally
        {
            await Tools.TryRunAsync("virsh", "-c", "qemu:///system", "undefine", "--checkpoints-metadata", name);
            await Tools.TryRunAsync("virsh", "-c", "qemu:///system", "undefine", "--checkpoints-metadata", other);
        }
    }

    [Fact]
    public async Task As_domain_never_runs_an_emulator_planted_in_the_saved_xml_unless_trusted()
    {
        // An executable that leaves a marker wherever libvirt runs it (it probes an emulator at define time, runs it at start).
        var evilDir = Directory.CreateTempSubdirectory("bkd-evil-").FullName;
        var marker = Path.Combine(evilDir, "marker");
        var evil = Path.Combine(evilDir, "evil-emulator");
        await File.WriteAllTextAsync(evil, $"#!/bin/sh\ntouch {marker}\nexec /usr/bin/qemu-system-x86_64 \"$@\"\n");
        await Tools.RunAsync("chmod", "0755", evil);
        await Tools.RunAsync("chmod", "0777", evilDir);
        var name = $"bkd-{Guid.NewGuid():N}"[..12] + "-evil";
        var trusted = name + "-trusted";
        await using var catalog = new Npgsql.NpgsqlConnection(f.ConnectionString);
        var original = await Dapper.SqlMapper.QuerySingleAsync<string>(catalog, "select domain_xml from restore_points where id = @id", new { id = f.Points[0] });
        Assert.Contains("<emulator>", original, StringComparison.Ordinal);
        var edited = System.Text.RegularExpressions.Regex.Replace(original, "<emulator>[^<]*</emulator>", $"<emulator>{evil}</emulator>");
        async Task SetXml(string xml) => await Dapper.SqlMapper.ExecuteAsync(catalog, "update restore_points set domain_xml = @xml where id = @id", new { xml, id = f.Points[0] });
        try
        {
            await SetXml(edited);
            var hostEmulator = System.Xml.Linq.XElement.Parse(await Tools.Virsh("domcapabilities", "--virttype", "qemu", "--arch", "x86_64", "--machine", "pc")).Element("path")!.Value;

            var run = await f.Backupd("restore", "--domain", f.Vm.Name, "--point", f.Points[0], "--as-domain", name, "--json");

            Assert.True(run.ExitCode == 0, run.Stderr);
            var changes = JsonDocument.Parse(run.Stdout).RootElement.GetProperty("changes").EnumerateArray().ToList();
            var replaced = Assert.Single(changes, c => c.GetProperty("element").GetString()!.Contains(evil, StringComparison.Ordinal));
            Assert.Equal("replaced", replaced.GetProperty("action").GetString());
            var defined = System.Xml.Linq.XElement.Parse(await Tools.Virsh("dumpxml", "--inactive", name));
            Assert.Equal(hostEmulator, defined.Element("devices")!.Element("emulator")!.Value);
            await Tools.Virsh("start", name);
            Assert.Equal("running", (await Tools.Virsh("domstate", name)).Trim());
            Assert.False(File.Exists(marker), "the planted emulator ran");

            // The same point with --trust-saved-xml: the emulator is the planted one, and libvirt runs it as soon as
            // the domain is defined (which shows the marker above could have appeared).
            var trust = await f.Backupd("restore", "--domain", f.Vm.Name, "--point", f.Points[0], "--as-domain", trusted,
                "--images-dir", Path.Combine(_out, "trusted"), "--trust-saved-xml", "--json");
            Assert.True(trust.ExitCode == 0, trust.Stderr);
            Assert.Contains(evil, await Tools.Virsh("dumpxml", "--inactive", trusted), StringComparison.Ordinal);
            Assert.True(File.Exists(marker), "libvirt did not run the emulator of a trusted XML: the check above proves nothing");
        }
        finally
        {
            await SetXml(original);
            foreach (var n in new[] { name, trusted })
            {
                await Tools.TryRunAsync("virsh", "-c", "qemu:///system", "destroy", n);
                await Tools.TryRunAsync("virsh", "-c", "qemu:///system", "undefine", "--checkpoints-metadata", n);
            }
            Directory.Delete(evilDir, recursive: true);
        }
    }

    [Fact]
    public async Task In_place_restores_a_shut_off_domain_and_refuses_a_running_one()
    {
        var vda = f.Vm.Disk("vda").Path;
        await TestVm.WritePatternAsync(vda, "qcow2", 2 * ThreePointsFixture.MiB, ThreePointsFixture.MiB, 0x99); // damage after the backups

        var run = await f.Backupd("restore", "--domain", f.Vm.Name, "--point", f.Points[0], "--in-place", "--force", "--json");

        Assert.True(run.ExitCode == 0, run.Stderr);
        await ThreePointsFixture.AssertGuestViewAsync(vda, f.Vm.Disk("vdb").Path, 1);
        Assert.DoesNotContain(Directory.GetFiles(f.Vm.Directory), p => p.Contains("before-restore", StringComparison.Ordinal) || p.Contains("backupd-restore", StringComparison.Ordinal));

        await f.Vm.StartAsync();
        try
        {
            var refused = await f.Backupd("restore", "--domain", f.Vm.Name, "--point", f.Points[2], "--in-place", "--force");
            Assert.Equal(2, refused.ExitCode);
            Assert.Contains("running", refused.Stderr, StringComparison.Ordinal);
        }
        finally
        {
            await f.Vm.DestroyAsync();
        }
        await ThreePointsFixture.AssertGuestViewAsync(vda, f.Vm.Disk("vdb").Path, 1);
        // Back to the newest point for the other tests.
        Assert.Equal(0, (await f.Backupd("restore", "--domain", f.Vm.Name, "--in-place", "--force")).ExitCode);
        Assert.True(await QemuImg.CompareAsync(f.Reference, vda, CancellationToken.None));
    }

    [Fact]
    public async Task Verify_records_ok_and_a_rebuilt_catalog_of_a_copy_reproduces_the_points_then_catches_flipped_bits()
    {
        var verify = await f.Backupd("verify", "--domain", f.Vm.Name, "--json");
        Assert.True(verify.ExitCode == 0, verify.Stderr);
        var shown = JsonDocument.Parse((await f.Backupd("show", f.Points[1], "--json")).Stdout).RootElement;
        Assert.True(shown.GetProperty("lastVerify").GetProperty("ok").GetBoolean());

        // A copy of the repository, catalogued from scratch in a database of its own.
        var copy = Path.Combine(_out, "repo-copy");
        await Tools.RunAsync("cp", "-a", "--sparse=always", f.Repository, copy);
        await using var db2 = await MigrationTests.FreshAsync();
        using var config2 = new TempConfig(db2.ConnectionString);
        Task<(int ExitCode, string Stdout, string Stderr)> Backupd2(params string[] args) => BackupdProcess.RunAsync(["--config", config2.Path, .. args]);
        Assert.Equal(0, (await Backupd2("catalog", "migrate")).ExitCode);
        var rebuild = await Backupd2("catalog", "rebuild", "--repository", copy, "--json");
        Assert.True(rebuild.ExitCode == 0, rebuild.Stderr);
        Assert.Equal(3, JsonDocument.Parse(rebuild.Stdout).RootElement.GetProperty("added").GetInt32());

        await using (var original = new CatalogStore(f.ConnectionString))
        await using (var rebuilt = new CatalogStore(db2.ConnectionString))
        {
            var uuid = Guid.Parse(f.Vm.Uuid);
            var a = await original.ListPointsAsync(uuid, null, CancellationToken.None);
            var b = await rebuilt.ListPointsAsync(uuid, null, CancellationToken.None);
            // Consistency too: the workflow attaches it to the point as repository metadata "consistency".
            Assert.Equal(a.Select(p => (p.Id, p.DomainName, p.CreatedAt, p.Files, p.TotalFileSize, p.Consistency)),
                b.Select(p => (p.Id, p.DomainName, p.CreatedAt, p.Files, p.TotalFileSize, p.Consistency)));
            Assert.All(b, p => Assert.Equal("crash-consistent", p.Consistency)); // a running VM without a guest agent
            foreach (var id in f.Points)
            {
                var da = (await original.GetPointAsync(id, CancellationToken.None))!;
                var dbb = (await rebuilt.GetPointAsync(id, CancellationToken.None))!;
                Assert.Equal(da.Files.Select(x => (x.FileKey, x.Digest, x.FileSize, x.SourcePath, x.BackingFile)), dbb.Files.Select(x => (x.FileKey, x.Digest, x.FileSize, x.SourcePath, x.BackingFile)));
                Assert.Equal(da.DomainXml, dbb.DomainXml);
            }
        }

        // A flipped bit in the mirror (the newest version of vdb) is found, named and recorded.
        var group = Path.Combine(copy, "groups", f.Vm.Uuid, "files");
        var mirror = Path.Combine(group, "vdb.0", "mirror");
        var offset = 3 * ThreePointsFixture.MiB + 12345; // inside region 3, written by the newest backup
        FlipBit(mirror, offset);
        var damaged = await Backupd2("verify", "--domain", f.Vm.Name, "--json");
        Assert.Equal(5, damaged.ExitCode);
        Assert.Contains(f.Points[2], damaged.Stderr, StringComparison.Ordinal);
        Assert.Contains("vdb.0", damaged.Stderr, StringComparison.Ordinal);
        FlipBit(mirror, offset);
        Assert.Equal(0, (await Backupd2("verify", "--point", f.Points[2])).ExitCode);

        // A flipped bit in an undo record damages the older point it reconstructs, not the newest.
        var undo = Directory.GetFiles(Path.Combine(group, "vdb.0", "undo")).OrderBy(p => p, StringComparer.Ordinal).First();
        FlipBit(undo, new FileInfo(undo).Length / 2);
        var older = await Backupd2("verify", "--domain", f.Vm.Name, "--json");
        Assert.Equal(5, older.ExitCode);
        var verdicts = JsonDocument.Parse(older.Stdout).RootElement.GetProperty("points").EnumerateArray()
            .ToDictionary(v => v.GetProperty("pointId").GetString()!, v => v.GetProperty("ok").GetBoolean());
        Assert.True(verdicts[f.Points[2]]);
        Assert.Contains(verdicts, v => !v.Value);
    }

    private static void FlipBit(string path, long offset)
    {
        using var stream = new FileStream(path, FileMode.Open, FileAccess.ReadWrite);
        stream.Position = offset;
        var b = stream.ReadByte();
        stream.Position = offset;
        stream.WriteByte((byte)(b ^ 0x04));
    }
}
