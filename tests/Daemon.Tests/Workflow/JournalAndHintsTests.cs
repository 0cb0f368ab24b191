using Backupd.Daemon.Libvirt;
using Backupd.Daemon.Workflow;

namespace Backupd.Daemon.Tests.Workflow;

[Collection("Faults")]
public sealed class JournalAndHintsTests : IDisposable
{
    private readonly string dir = Directory.CreateTempSubdirectory("bkd-journal-").FullName;

    public void Dispose() => Directory.Delete(dir, recursive: true);

    [Fact]
    public void Journal_entries_round_trip_and_closed_runs_leave_the_open_set()
    {
        var journal = new RunJournal(dir);
        var entry = new JournalEntry
        {
            RunId = "20261126T092300Z-1a2b3c4d",
            DomainUuid = "6f3c2a9e-1111-2222-3333-444455556666",
            DomainName = "vm1",
            Persistent = false,
            WasActive = true,
            Disks = [new JournalDisk("vdb", new DiskBase("block", "/dev/vg/lv", "raw"), "/s/x.backupd-20261126T092300Z-1a2b3c4d.qcow2")],
        };
        journal.Write(entry);
        entry.Step = RunStep.Copied;
        entry.Disks[0].Merged = true;
        journal.Write(entry);

        var read = Assert.Single(journal.OpenEntries());
        Assert.Equal(RunStep.Copied, read.Step);
        Assert.Equal(new DiskBase("block", "/dev/vg/lv", "raw"), read.Disks[0].Base);
        Assert.True(read.Disks[0].Merged);
        Assert.False(read.Persistent);
        Assert.Empty(Directory.GetFiles(journal.Directory, "*.tmp"));

        journal.Close(read);
        Assert.Empty(journal.OpenEntries());
        Assert.True(File.Exists(Path.Combine(journal.Directory, "done", entry.RunId + ".json")));
    }

    [Fact]
    public void A_torn_journal_file_is_skipped_not_fatal()
    {
        var journal = new RunJournal(dir);
        Directory.CreateDirectory(journal.Directory);
        File.WriteAllText(Path.Combine(journal.Directory, "bad.json"), "{ \"runId\": ");
        Assert.Empty(journal.OpenEntries());
    }

    [Fact]
    public void Hints_name_the_fix_for_common_libvirt_failures()
    {
        Assert.Contains("AppArmor", Hints.Explain(new LibvirtException("virDomainBlockCommit", 38, 10, "Could not open '/x': Permission denied")), StringComparison.Ordinal);
        Assert.Contains("hung", Hints.Explain(new LibvirtException("virDomainGetBlockJobInfo", 68, 10, "cannot acquire state change lock")), StringComparison.Ordinal);
        Assert.Contains("qemu-guest-agent", Hints.Explain(new LibvirtException("virDomainSnapshotCreateXML", 86, 10, "agent unresponsive")), StringComparison.Ordinal);
        Assert.Equal("plain", Hints.Explain(new IOException("plain")));
    }

    [Theory]
    [InlineData("mid-copy:kill", "after-copy", false)]
    [InlineData("after-copy:throw", "after-copy", true)]
    [InlineData("", "after-copy", false)]
    public void Fault_spec_fires_only_at_its_step(string spec, string step, bool throws)
    {
        Faults.Spec = spec;
        try
        {
            if (throws) Assert.Throws<InjectedFaultException>(() => Faults.Hit(step));
            else Faults.Hit(step);
        }
        finally { Faults.Spec = null; }
    }

    [Fact]
    public void A_malformed_fault_spec_is_a_clear_error()
    {
        Faults.Spec = "nowhere:kill";
        try
        {
            var e = Assert.Throws<InvalidOperationException>(() => Faults.Hit("after-copy"));
            Assert.Contains("after-journal", e.Message, StringComparison.Ordinal);
        }
        finally { Faults.Spec = null; }
    }
}
