using Npgsql;

namespace Backupd.Integration.Fixtures;

[Trait("Category", "Integration")]
public sealed class TestVmTests
{
    [Fact]
    public async Task Guest_write_through_hmp_is_in_the_image_after_the_vm_stops()
    {
        await using var vm = await TestVm.CreateAsync(new DiskSpec("vda"));
        await vm.StartAsync();
        Assert.Equal("running", await vm.StateAsync());

        await vm.WriteAsGuestAsync("vda", 4 * TestVm.MiB, 0xcd, 2 * TestVm.MiB);

        Assert.True(await vm.GuestReadMatchesAsync("vda", 4 * TestVm.MiB, 2 * TestVm.MiB, 0xcd));
        Assert.False(await vm.GuestReadMatchesAsync("vda", 4 * TestVm.MiB, 2 * TestVm.MiB, 0x11));
        await vm.DestroyAsync();
        var disk = vm.Disk("vda");
        Assert.True(await TestVm.ImageMatchesAsync(disk.Path, "qcow2", 4 * TestVm.MiB, 2 * TestVm.MiB, 0xcd));
        Assert.True(await TestVm.ImageMatchesAsync(disk.Path, "qcow2", 0, TestVm.MiB, 0x11));
    }

    [Fact]
    public async Task Linked_clone_writes_land_in_the_base_and_leave_the_template_alone()
    {
        await using var vm = await TestVm.CreateAsync(new DiskSpec("vda", WithTemplate: true, FillPattern: 0x40), new DiskSpec("vdb", Format: "raw"));
        await vm.StartAsync();
        var live = await vm.LiveXmlAsync();
        Assert.Contains(vm.Disk("vda").TemplatePath!, live, StringComparison.Ordinal);

        await vm.WriteAsGuestAsync("vda", 0, 0x99, TestVm.MiB);
        await vm.WriteAsGuestAsync("vdb", 0, 0x77, TestVm.MiB);
        await vm.DestroyAsync();

        var vda = vm.Disk("vda");
        Assert.True(await TestVm.ImageMatchesAsync(vda.TemplatePath!, "qcow2", 0, TestVm.MiB, 0x40));
        Assert.True(await TestVm.ImageMatchesAsync(vda.Path, "qcow2", 0, TestVm.MiB, 0x99));
        Assert.True(await TestVm.ImageMatchesAsync(vda.Path, "qcow2", TestVm.MiB, TestVm.MiB, 0x41));
        Assert.True(await TestVm.ImageMatchesAsync(vm.Disk("vdb").Path, "raw", 0, TestVm.MiB, 0x77));
    }

    [Fact]
    public async Task Dispose_removes_the_domain_and_its_files()
    {
        var vm = await TestVm.CreateAsync(new DiskSpec("vda"), new DiskSpec("hdc", Device: "cdrom"));
        await vm.StartAsync();
        await vm.DisposeAsync();

        var (code, _, _) = await Tools.TryRunAsync("virsh", "-c", "qemu:///system", "dominfo", vm.Name);
        Assert.NotEqual(0, code);
        Assert.False(Directory.Exists(vm.Directory));
    }
}

[Trait("Category", "Integration")]
public sealed class PostgresDatabaseTests(PostgresDatabase database) : IClassFixture<PostgresDatabase>
{
    [Fact]
    public async Task A_table_round_trips_through_npgsql_in_a_private_database()
    {
        await using var connection = new NpgsqlConnection(database.ConnectionString);
        await connection.OpenAsync();
        Assert.Equal(database.DatabaseName, connection.Database);

        await using (var create = new NpgsqlCommand("create table t (id int primary key, name text not null)", connection))
            await create.ExecuteNonQueryAsync();
        await using (var insert = new NpgsqlCommand("insert into t values (@id, @name)", connection))
        {
            insert.Parameters.AddWithValue("id", 7);
            insert.Parameters.AddWithValue("name", "vm-'; drop table t; --ü");
            await insert.ExecuteNonQueryAsync();
        }
        await using var select = new NpgsqlCommand("select name from t where id = 7", connection);
        Assert.Equal("vm-'; drop table t; --ü", await select.ExecuteScalarAsync());
    }
}
