using System.Diagnostics;
using System.Globalization;
using System.Text.Json;
using Backupd.Integration.Fixtures;
using Backupd.Storage.Catalog;
using Microsoft.Playwright;
using static Backupd.Integration.Fixtures.Eventually;

namespace Backupd.Integration;

/// <summary>
/// The daemon watched from outside, as an admin would: its status page in a real headless browser (Debian chromium
/// through Playwright) shows a domain backed up here with its progress moving during a slow copy, then a failed run
/// with its message; the webhook gets the failure; /metrics after it passes `promtool check metrics`.
/// Screenshots go to $BACKUPD_SCREENSHOT_DIR (docs/screenshots when making the docs), else a temp directory.
/// </summary>
[Trait("Category", "Integration")]
public sealed class WatchedDaemonTests(PostgresDatabase database) : IClassFixture<PostgresDatabase>
{
    private const string Chromium = "/usr/bin/chromium";

    [Fact]
    public async Task Status_page_shows_progress_and_a_failure_and_metrics_follow_the_runs()
    {
        if (!File.Exists(Chromium)) throw new InvalidOperationException("chromium is missing: apt-get install -y chromium (scripts/setup-env installs it)");
        await using var vm = await TestVm.CreateAsync(new DiskSpec("vda", SizeBytes: 48 << 20));
        await TestVm.WritePatternAsync(vm.Disk("vda").Path, "qcow2", 0, 44 << 20, 0x5a); // data to copy, not holes
        await vm.StartAsync();
        using var receiver = new WebhookReceiver();
        var port = WebhookReceiver.FreePort();
        using var config = new TempConfig(database.ConnectionString,
            $"http:\n  listen: 127.0.0.1:{port}\nnotify:\n  hook:\n    webhook: {receiver.Url}\n    events: [failure, recovered]\n");
        var repository = Path.Combine(config.Directory, "repo");
        var policyFile = Path.Combine(config.PoliciesDirectory, "watched.yaml");
        // 48 MiB at 4 MiB/s: a copy of about 12 s, long enough to see its progress move.
        var policy = $"name: watched\ndomains: [{vm.Name}]\nschedule: every 5s\nrepository: {repository}\nbandwidth: {{copy: 4MiB}}\n";
        await File.WriteAllTextAsync(policyFile, policy);
        var shots = Environment.GetEnvironmentVariable("BACKUPD_SCREENSHOT_DIR") is { Length: > 0 } d ? d : Directory.CreateTempSubdirectory("bkd-shots-").FullName;
        Directory.CreateDirectory(shots);

        using var process = BackupdProcess.StartCollecting(null, out var output, "--config", config.Path, "daemon");
        try
        {
            var baseUrl = $"http://127.0.0.1:{port}/";
            await WaitUntilAsync(() => output.Any(l => l.Contains($"serving metrics, status page and JSON API on http://127.0.0.1:{port}/", StringComparison.Ordinal)),
                TimeSpan.FromSeconds(60), "the HTTP listener", output);

            Environment.SetEnvironmentVariable("PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD", "1");
            using var playwright = await Playwright.CreateAsync();
            await using var browser = await playwright.Chromium.LaunchAsync(new() { ExecutablePath = Chromium, Headless = true, Args = ["--no-sandbox"] });
            var page = await browser.NewPageAsync(new() { ViewportSize = new() { Width = 1280, Height = 720 } });
            await page.GotoAsync(baseUrl);

            // The running job's percentage, read twice from the page while the copy runs: it moves forward.
            var job = page.Locator($"#jobs tr[data-key='{vm.Name}']");
            var pct = job.Locator(".pct");
            await WaitForAsync(async () => (await job.CountAsync()) == 1 && (await pct.TextContentAsync() ?? "").Contains('%', StringComparison.Ordinal) &&
                (await job.Locator("td").Nth(2).TextContentAsync()) == "copy", TimeSpan.FromSeconds(90), "the copy on the page", output, page);
            var first = Percent(await pct.TextContentAsync());
            await page.ScreenshotAsync(new() { Path = Path.Combine(shots, "status-overview-running.png"), FullPage = true });
            await WaitForAsync(async () => (await job.CountAsync()) == 0 || Percent(await pct.TextContentAsync()) > first + 5, TimeSpan.FromSeconds(30), "the percentage to move", output);
            Assert.Equal(1, await job.CountAsync()); // still running: the page moved with it rather than jumping to the end

            // The backup ends: the domain row says succeeded, its age is fresh and it has a point.
            var row = page.Locator($"#domains tr[data-key='{vm.Name}']");
            await WaitForAsync(async () => (await row.CountAsync()) == 1 && (await row.Locator("td").Nth(4).TextContentAsync() ?? "").StartsWith("succeeded", StringComparison.Ordinal),
                TimeSpan.FromSeconds(90), "a succeeded backup on the page", output);
            Assert.Equal("fresh", await row.Locator("td").Nth(2).GetAttributeAsync("data-staleness"));

            // A copy timeout shorter than the copy: the next run is interrupted and the page shows its message.
            await File.WriteAllTextAsync(policyFile, policy + "timeouts: {copy: 2s}\n");
            await Tools.RunAsync("kill", "-HUP", process.Id.ToString(CultureInfo.InvariantCulture));
            await WaitForAsync(async () => (await row.Locator(".err").CountAsync()) == 1, TimeSpan.FromSeconds(120), "a failed run on the page", output);
            await using (var catalog = new CatalogStore(database.ConnectionString))
            {
                var failed = (await catalog.ListRunsAsync(Guid.Parse(vm.Uuid), 20, default)).First(r => r.State is RunStates.Failed or RunStates.Interrupted);
                Assert.Equal(failed.Error, await row.Locator(".err").TextContentAsync());
                Assert.False(string.IsNullOrEmpty(failed.Error));
            }
            await page.ScreenshotAsync(new() { Path = Path.Combine(shots, "status-overview.png"), FullPage = true });

            // The domain page: the restore point and both runs, the failed one with its error.
            await page.GotoAsync($"{baseUrl}domains/{vm.Name}");
            await WaitForAsync(async () => (await page.Locator("#points tbody tr").CountAsync()) >= 1 && (await page.Locator("#runs tbody td.err:not(:empty)").CountAsync()) >= 1,
                TimeSpan.FromSeconds(30), "the domain page", output);
            await page.ScreenshotAsync(new() { Path = Path.Combine(shots, "status-domain.png"), FullPage = true });

            // The webhook got the failure (the daemon's own notification path).
            await WaitUntilAsync(() => receiver.Requests.Any(r => r.Headers["X-Backupd-Event"] == "failure"), TimeSpan.FromSeconds(30), "the failure webhook", output);
            var hook = JsonDocument.Parse(receiver.Requests.First(r => r.Headers["X-Backupd-Event"] == "failure").Body).RootElement;
            Assert.Equal(vm.Name, hook.GetProperty("domain").GetString());
            Assert.Equal("watched", hook.GetProperty("policy").GetString());

            // /metrics: the JSON API and the scrape agree with the catalog, and promtool accepts the exposition.
            using var http = new HttpClient();
            var metrics = await http.GetStringAsync($"{baseUrl}metrics");
            await File.WriteAllTextAsync(Path.Combine(shots, "metrics-after-backup.txt"), metrics);
            Assert.Contains("backupd_catalog_up 1\n", metrics, StringComparison.Ordinal);
            Assert.Matches($"backupd_last_success_timestamp_seconds\\{{domain=\"{vm.Name}\",policy=\"watched\"\\}} \\d", metrics);
            Assert.Matches("backupd_runs_total\\{outcome=\"succeeded\",policy=\"watched\"\\} [1-9]", metrics);
            Assert.Matches("backupd_runs_total\\{outcome=\"interrupted\",policy=\"watched\"\\} [1-9]", metrics);
            Assert.Matches($"backupd_restore_points\\{{domain=\"{vm.Name}\"\\}} [1-9]", metrics);
            Assert.Contains("backupd_policy_interval_seconds{policy=\"watched\"} 5\n", metrics, StringComparison.Ordinal);
            Assert.Matches("backupd_overlay_lifetime_seconds_count [1-9]", metrics);
            var check = await PromtoolStdinAsync(metrics);
            Assert.True(check.ExitCode == 0, check.Output);
            var status = JsonDocument.Parse(await http.GetStringAsync($"{baseUrl}api/status")).RootElement;
            Assert.Contains(status.GetProperty("domains").EnumerateArray(), e => e.GetProperty("name").GetString() == vm.Name && e.GetProperty("points").GetInt32() >= 1);
        }
        finally
        {
            if (!process.HasExited)
            {
                await Tools.RunAsync("kill", "-TERM", process.Id.ToString(CultureInfo.InvariantCulture));
                using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(120));
                await process.WaitForExitAsync(timeout.Token);
            }
        }
        Assert.Equal(0, process.ExitCode);
        Assert.Equal(vm.Disk("vda").Path, await vm.ActiveSourceAsync("vda"));
    }

    private static double Percent(string? text)
    {
        var t = (text ?? "").Trim();
        var end = t.IndexOf('%', StringComparison.Ordinal);
        return end > 0 && double.TryParse(t[..end].Trim(), NumberStyles.Float, CultureInfo.InvariantCulture, out var p) ? p : -1;
    }

    private static async Task WaitForAsync(Func<Task<bool>> condition, TimeSpan limit, string what, IEnumerable<string> output, IPage? page = null)
    {
        var deadline = DateTime.UtcNow + limit;
        while (!await condition())
        {
            if (DateTime.UtcNow > deadline)
                throw new TimeoutException($"waited {limit.TotalSeconds}s for {what}; page: {(page is null ? "" : await page.Locator("body").InnerHTMLAsync())}; process output:\n{string.Join('\n', output.TakeLast(40))}");
            await Task.Delay(200);
        }
    }

    /// <summary>`promtool check metrics` reads the exposition on stdin (lint: names, HELP/TYPE, histogram shape).</summary>
    private static async Task<(int ExitCode, string Output)> PromtoolStdinAsync(string exposition)
    {
        var info = new ProcessStartInfo("/usr/bin/promtool", ["check", "metrics"]) { RedirectStandardInput = true, RedirectStandardOutput = true, RedirectStandardError = true };
        using var p = Process.Start(info)!;
        await p.StandardInput.WriteAsync(exposition);
        p.StandardInput.Close();
        var stdout = p.StandardOutput.ReadToEndAsync();
        var stderr = p.StandardError.ReadToEndAsync();
        await p.WaitForExitAsync();
        return (p.ExitCode, await stdout + await stderr);
    }
}
