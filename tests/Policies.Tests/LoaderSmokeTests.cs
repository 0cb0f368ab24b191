using Backupd.Policies.Loading;
using Backupd.Policies.Model;

namespace Backupd.Policies.Tests;

public class LoaderSmokeTests
{
    private const string Valid = """
        policies:
          - name: nightly-web
            domains:
              include: [web-*, db1]
              exclude: [web-test]
            disks: [vda]
            schedule:
              cron: ["0 30 2 * * ?", daily 14:00]
              time-zone: Europe/Berlin
            quiesce: required
            repository: /srv/backup/web
            block-size: 64KiB
            retention: {keep-last: 3, keep-daily: 7, keep-weekly: 4}
            verify: {after-backup: true, schedule: weekly sun 04:00}
            max-parallel: 2
            timeouts: {copy: 4h, commit: 20m}
            bandwidth: {copy: 200MiB/s, commit: 100MiB/s}
          - name: hourly-db
            domains: [db2]
            schedule: hourly
            repository: /srv/backup/db
        """;

    [Fact]
    public void Valid_file_loads_every_field()
    {
        var result = PolicyLoader.ParseText(Valid, "/etc/backupd/policies.d/web.yaml");
        Assert.Empty(result.Errors);
        Assert.Equal(2, result.Policies.Count);
        var p = result.Policies[0];
        Assert.Equal("nightly-web", p.Name);
        Assert.Equal(new SourcePosition("/etc/backupd/policies.d/web.yaml", 2, 5), p.Source);
        Assert.True(p.Domains.Matches("web-1"));
        Assert.False(p.Domains.Matches("web-test"));
        Assert.True(p.Domains.Matches("db1"));
        Assert.Equal(["0 30 2 * * ?", "0 0 14 * * ?"], p.Schedule.Entries.Select(e => e.CronText));
        Assert.Equal("Europe/Berlin", p.Schedule.TimeZoneId);
        Assert.Equal(QuiesceMode.Required, p.Quiesce);
        Assert.Equal(65536, p.BlockSize);
        Assert.Equal(new Retention.RetentionRules(Last: 3, Daily: 7, Weekly: 4), p.Retention);
        Assert.True(p.Verify.AfterBackup);
        Assert.Equal("0 0 4 ? * SUN", p.Verify.Schedule!.Entries[0].CronText);
        Assert.Equal(2, p.MaxParallel);
        Assert.Equal(TimeSpan.FromHours(4), p.CopyTimeout);
        Assert.Equal(TimeSpan.FromMinutes(20), p.CommitTimeout);
        Assert.Equal(200L << 20, p.CopyBandwidth);
        Assert.Equal(100L << 20, p.CommitBandwidth);
        var q = result.Policies[1];
        Assert.Equal(QuiesceMode.Preferred, q.Quiesce);
        Assert.Equal("UTC", q.Schedule.TimeZoneId);
        Assert.True(q.Disks.Matches("sdz"));
    }
}
