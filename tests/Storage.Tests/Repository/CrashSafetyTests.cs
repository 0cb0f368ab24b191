using Backupd.Storage.Repository;
using Backupd.Storage.Tests.Delta;

namespace Backupd.Storage.Tests.Repository;

/// <summary>
/// Crash at each write phase (a fault hook throws; the session then abandons everything as a killed process
/// would), reopen, and check every restore point's content and digest.
/// </summary>
public class CrashSafetyTests
{
    public static TheoryData<string, int> BackupPhases => new()
    {
        { "journal-written", 1 },
        { "undo-created", 1 },
        { "undo-synced", 1 },
        { "undo-synced", 3 },
        { "mirror-written", 1 },
        { "mirror-written", 2 },
        { "signature-written", 1 },
        { "signature-written", 2 },
        { "before-manifest", 1 },
        { "manifest-written", 1 },
    };

    private static Action<string> CrashAt(string phase, int occurrence)
    {
        var seen = 0;
        return p =>
        {
            if (p == phase && ++seen == occurrence)
            {
                throw new SimulatedCrashException(p);
            }
        };
    }

    [Theory]
    [MemberData(nameof(BackupPhases))]
    public async Task Backup_interrupted_at_any_phase_leaves_every_point_intact(string phase, int occurrence)
    {
        using var t = new TempRepository();
        var a = new List<byte[]> { TempRepository.Content(1, 30, 7) };
        var b = new List<byte[]> { TempRepository.Content(2, 25) };
        a.Add(TempRepository.Edit(3, a[0], TestFiles.Edit.InPlace));
        b.Add(TempRepository.Edit(4, b[0], TestFiles.Edit.Grow));
        var points = new List<RestorePointInfo>
        {
            await t.BackupAsync("vm", ("a", a[0]), ("b", b[0])),
            await t.BackupAsync("vm", ("a", a[1]), ("b", b[1])),
        };
        var a2 = TempRepository.Edit(5, a[1], TestFiles.Edit.Relocate);
        a2 = TempRepository.Edit(6, a2, TestFiles.Edit.InPlace);
        var b2 = TempRepository.Edit(7, b[1], TestFiles.Edit.Truncate);
        var c2 = TempRepository.Content(8, 9);

        t.Repo.FaultHook = CrashAt(phase, occurrence);
        var session = t.Repo.BeginBackup("vm", "vm");
        var crashed = false;
        try
        {
            foreach (var (key, content) in new[] { ("a", a2), ("b", b2), ("c", c2) })
            {
                var src = t.WriteSource("src-" + key, content);
                await session.AddFileAsync(key, src, new SourceFileInfo(src, "raw", null, 0), null, CancellationToken.None);
            }
            session.Commit();
        }
        catch (SimulatedCrashException)
        {
            crashed = true;
        }
        finally
        {
            session.Dispose(); // a crashed session only drops its lock, like a dead process
        }
        Assert.True(crashed, $"the fault at {phase} #{occurrence} was reached");

        var repo = t.Reopen();
        Assert.False(File.Exists(Path.Combine(t.RepoDir, "groups", "vm", "journal.json")), "recovery removed the journal");
        var listed = repo.ListPoints("vm");
        var committed = phase == "manifest-written";
        Assert.Equal(committed ? 3 : 2, listed.Count);
        Assert.Equal(a[0], await t.RestoreAsync(points[0].PointId, "a"));
        Assert.Equal(b[0], await t.RestoreAsync(points[0].PointId, "b"));
        Assert.Equal(a[1], await t.RestoreAsync(points[1].PointId, "a"));
        Assert.Equal(b[1], await t.RestoreAsync(points[1].PointId, "b"));
        if (committed)
        {
            Assert.Equal(a2, await t.RestoreAsync(listed[0].PointId, "a"));
            Assert.Equal(b2, await t.RestoreAsync(listed[0].PointId, "b"));
            Assert.Equal(c2, await t.RestoreAsync(listed[0].PointId, "c"));
        }
        var report = await repo.VerifyAsync(null, null, null, CancellationToken.None);
        Assert.True(report.Ok, string.Join("\n", report.Problems));

        // And the repository keeps working: the next backup and its restore are exact.
        var p = await t.BackupAsync("vm", ("a", a2), ("b", b2));
        Assert.Equal(a2, await t.RestoreAsync(p.PointId, "a"));
        Assert.Equal(a[1], await t.RestoreAsync(points[1].PointId, "a"));
        Assert.True((await repo.VerifyAsync(null, null, null, CancellationToken.None)).Ok);
    }

    [Theory]
    [InlineData("delete-journal-written", false)]
    [InlineData("merged-written", false)]
    [InlineData("manifest-deleted", true)]
    public async Task Deletion_interrupted_at_any_phase_leaves_every_point_intact(string phase, bool deleted)
    {
        using var t = new TempRepository();
        var v = new List<byte[]> { TempRepository.Content(1, 20, 9) };
        v.Add(TempRepository.Edit(2, v[0], TestFiles.Edit.InPlace));
        v.Add(TempRepository.Edit(3, v[1], TestFiles.Edit.Grow));
        v.Add(TempRepository.Edit(4, v[2], TestFiles.Edit.InPlace));
        await CrashDeletionThenCheckAsync(t, v, victim: 1, phase, deleted);
    }

    [Theory]
    [InlineData("delete-journal-written", false)]
    [InlineData("manifest-deleted", true)]
    [InlineData("rollback-signed", true)]
    public async Task Deletion_of_the_newest_point_interrupted_at_any_phase_leaves_every_other_point_intact(string phase, bool deleted)
    {
        using var t = new TempRepository();
        var v = new List<byte[]> { TempRepository.Content(5, 20, 9) };
        v.Add(TempRepository.Edit(6, v[0], TestFiles.Edit.Grow));
        v.Add(TempRepository.Edit(7, v[1], TestFiles.Edit.Relocate));
        var points = await CrashDeletionThenCheckAsync(t, v, victim: 2, phase, deleted);

        var next = await t.BackupAsync("g", ("f", v[0]));
        Assert.Equal(v[0], await t.RestoreAsync(next.PointId, "f"));
        Assert.Equal(v[1], await t.RestoreAsync(points[1].PointId, "f"));
    }

    /// <summary>
    /// Backs up each version of "f", crashes the deletion of point <paramref name="victim"/> at <paramref name="phase"/>,
    /// reopens, and checks that exactly the points that should remain restore their bytes and verify.
    /// </summary>
    private static async Task<List<RestorePointInfo>> CrashDeletionThenCheckAsync(TempRepository t, List<byte[]> v, int victim, string phase, bool deleted)
    {
        var points = new List<RestorePointInfo>();
        foreach (var x in v)
        {
            points.Add(await t.BackupAsync("g", ("f", x)));
        }
        t.Repo.FaultHook = CrashAt(phase, 1);
        Assert.Throws<SimulatedCrashException>(() => t.Repo.DeletePoint(points[victim].PointId));

        var repo = t.Reopen();
        Assert.Equal(deleted ? v.Count - 1 : v.Count, repo.ListPoints().Count);
        for (var i = 0; i < v.Count; i++)
        {
            if (i == victim && deleted)
            {
                continue;
            }
            Assert.Equal(v[i], await t.RestoreAsync(points[i].PointId, "f"));
        }
        Assert.True((await repo.VerifyAsync(null, null, null, CancellationToken.None)).Ok);
        return points;
    }
}
