using System.Diagnostics;
using Backupd.Storage.Repository;

namespace Backupd.Storage.Tests.Repository;

/// <summary>
/// Readers (restore, verify) and writers (backup) of one group (docs/repository-format.md, "Locks"): readers share the
/// group, a backup waits for them up to its reader wait and is refused with nothing changed if they outlast it.
/// The readers here are real restores, held inside their read by a progress callback that blocks.
/// </summary>
public sealed class GroupLockTests
{
    /// <summary>Blocks the restore that reports to it (inside the group's read lock) until released.</summary>
    private sealed class HeldProgress : IProgress<long>, IDisposable
    {
        private readonly ManualResetEventSlim _release = new();
        private readonly SemaphoreSlim _entered = new(0);

        public void Report(long value)
        {
            _entered.Release();
            _release.Wait();
        }

        public Task<bool> EnteredAsync() => _entered.WaitAsync(TimeSpan.FromSeconds(30));
        public void Release() => _release.Set();

        public void Dispose()
        {
            _release.Set();
            _release.Dispose();
            _entered.Dispose();
        }
    }

    private static async Task<(Task Restore, HeldProgress Held, string Target)> HoldRestoreAsync(TempRepository t, string pointId)
    {
        var held = new HeldProgress();
        var target = t.Path_($"restored-{Guid.NewGuid():N}");
        var restore = t.Repo.RestoreFileAsync(pointId, "f", target, held, CancellationToken.None);
        Assert.True(await held.EnteredAsync(), "the restore did not start reading");
        return (restore, held, target);
    }

    [Fact]
    public async Task A_backup_waits_for_a_restore_of_its_group_and_succeeds_once_the_restore_ends()
    {
        using var t = new TempRepository();
        var v1 = TempRepository.Content(1, 40);
        var p1 = await t.BackupAsync("g", ("f", v1));
        var (restore, held, target) = await HoldRestoreAsync(t, p1.PointId);
        using var _ = held;
        t.Repo.ReaderWait = TimeSpan.FromSeconds(60);

        var begin = Task.Run(() => t.Repo.BeginBackup("g", "vm-g"));
        await Task.Delay(700);
        Assert.False(begin.IsCompleted, "the backup must wait while the restore reads the group");
        held.Release();
        await restore;
        using var session = await begin.WaitAsync(TimeSpan.FromSeconds(30));
        var v2 = TempRepository.Content(2, 40);
        var src = t.WriteSource("src2", v2);
        await session.AddFileAsync("f", src, new SourceFileInfo(src, "raw", null, v2.Length), null, CancellationToken.None);
        var p2 = session.Commit();

        Assert.Equal(v1, File.ReadAllBytes(target)); // the restore read a consistent old version
        Assert.Equal(v1, await t.RestoreAsync(p1.PointId, "f"));
        Assert.Equal(v2, await t.RestoreAsync(p2.PointId, "f"));
    }

    [Fact]
    public async Task A_restore_that_outlasts_the_wait_refuses_the_backup_and_nothing_changes()
    {
        using var t = new TempRepository();
        var v1 = TempRepository.Content(3, 40);
        var p1 = await t.BackupAsync("g", ("f", v1));
        var group = Path.Combine(t.RepoDir, "groups", "g");
        var before = Directory.EnumerateFileSystemEntries(group, "*", SearchOption.AllDirectories).Order().ToList();
        var (restore, held, _) = await HoldRestoreAsync(t, p1.PointId);
        using var __ = held;
        t.Repo.ReaderWait = TimeSpan.FromMilliseconds(400);

        var clock = Stopwatch.StartNew();
        var e = Assert.Throws<RepositoryBusyException>(() => t.Repo.BeginBackup("g", "vm-g"));
        Assert.True(clock.Elapsed >= TimeSpan.FromMilliseconds(350), $"refused after {clock.Elapsed}, before the wait ran out");
        Assert.Contains("being read by a restore or verify", e.Message);
        Assert.Contains("nothing was done", e.Message);

        held.Release();
        await restore;
        Assert.Equal(before, Directory.EnumerateFileSystemEntries(group, "*", SearchOption.AllDirectories).Order().ToList());
        Assert.Single(t.Repo.ListPoints("g"));
        Assert.True((await t.Repo.VerifyAsync("g", null, null, CancellationToken.None)).Ok);
    }

    [Fact]
    public async Task Cancellation_ends_the_wait_for_readers_with_nothing_changed()
    {
        using var t = new TempRepository();
        var p1 = await t.BackupAsync("g", ("f", TempRepository.Content(6, 40)));
        var (restore, held, _) = await HoldRestoreAsync(t, p1.PointId);
        using var __ = held;
        t.Repo.ReaderWait = TimeSpan.FromMinutes(10);
        using var cts = new CancellationTokenSource(TimeSpan.FromMilliseconds(500));

        var clock = Stopwatch.StartNew();
        Assert.ThrowsAny<OperationCanceledException>(() => t.Repo.BeginBackup("g", "vm-g", cts.Token));
        Assert.True(clock.Elapsed < TimeSpan.FromSeconds(20), $"took {clock.Elapsed}: a stopping daemon must not sit out the reader wait");

        held.Release();
        await restore;
        using var next = t.Repo.BeginBackup("g", "vm-g"); // the writer lock was released
        Assert.Single(t.Repo.ListPoints("g"));
    }

    [Fact]
    public async Task Restores_and_verifies_of_one_group_run_side_by_side()
    {
        using var t = new TempRepository();
        var v1 = TempRepository.Content(4, 40);
        var p1 = await t.BackupAsync("g", ("f", v1));
        var (first, held1, target1) = await HoldRestoreAsync(t, p1.PointId);
        using var _ = held1;
        var (second, held2, target2) = await HoldRestoreAsync(t, p1.PointId); // entered while the first still reads
        using var __ = held2;
        var report = await t.Repo.VerifyAsync("g", null, null, CancellationToken.None);
        Assert.True(report.Ok, string.Join("; ", report.Problems));
        held1.Release();
        held2.Release();
        await Task.WhenAll(first, second);
        Assert.Equal(v1, File.ReadAllBytes(target1));
        Assert.Equal(v1, File.ReadAllBytes(target2));
    }

    [Fact]
    public void A_second_backup_of_the_group_is_refused_at_once_whatever_the_reader_wait()
    {
        using var t = new TempRepository();
        t.Repo.ReaderWait = TimeSpan.FromMinutes(10);
        using var first = t.Repo.BeginBackup("g", "vm");
        var clock = Stopwatch.StartNew();
        var e = Assert.Throws<RepositoryBusyException>(() => BackupRepository.Open(t.RepoDir).BeginBackup("g", "vm"));
        Assert.True(clock.Elapsed < TimeSpan.FromSeconds(5), $"took {clock.Elapsed}: a writer must not wait for another writer");
        Assert.Contains("another backup, deletion or recovery", e.Message);
    }

    [Fact]
    public async Task A_restore_is_refused_while_a_backup_holds_the_group()
    {
        using var t = new TempRepository();
        var p1 = await t.BackupAsync("g", ("f", TempRepository.Content(5, 4)));
        using var session = t.Repo.BeginBackup("g", "vm");
        var e = await Assert.ThrowsAsync<RepositoryBusyException>(() => t.Repo.RestoreFileAsync(p1.PointId, "f", t.Path_("r"), null, CancellationToken.None));
        Assert.Contains("being updated by a backup or deletion", e.Message);
    }
}
