using System.CommandLine;
using Backupd.Daemon.Configuration;
using Backupd.Daemon.Runs;
using Backupd.Storage.Catalog;
using Npgsql;
using Spectre.Console;

namespace Backupd.Daemon.Cli.Catalog;

/// <summary>
/// What the catalog commands share: open the catalog named by the configuration (refusing one that
/// was never migrated), and turn the errors they can meet into one clear line and a documented exit code.
/// </summary>
public static class CatalogCli
{
    /// <summary>
    /// Where tables go. On a terminal: the terminal, at its width. Redirected: no colours and a wide
    /// line, so a pipe or a log gets whole names, paths and digests instead of cells wrapped at 80 columns.
    /// </summary>
    public static IAnsiConsole Out { get; } = CreateOut();

    private static IAnsiConsole CreateOut()
    {
        if (!Console.IsOutputRedirected) return AnsiConsole.Console;
        var console = AnsiConsole.Create(new AnsiConsoleSettings
        {
            Ansi = AnsiSupport.No,
            ColorSystem = ColorSystemSupport.NoColors,
            Out = new AnsiConsoleOutput(Console.Out),
        });
        console.Profile.Width = 1000;
        return console;
    }

    /// <summary>Runs <paramref name="body"/> with an open catalog; maps failures to exit codes.</summary>
    public static Task<int> RunAsync(ParseResult parse, Func<CatalogStore, DaemonConfig, Task<int>> body, CancellationToken ct) =>
        GuardAsync(parse, async () =>
        {
            var config = GlobalOptions.LoadConfig(parse);
            var store = new CatalogStore(config.CatalogConnectionString);
            await using (store)
            {
                await RequireMigratedAsync(store, ct);
                return await body(store, config);
            }
        });

    /// <summary>
    /// Runs a catalog command's body. Its failures (catalog, configuration, lock, libvirt errors) go up to
    /// <see cref="CommandTree"/>, which maps them in one place (<see cref="CliErrors"/>): exit code, stderr, JSON.
    /// </summary>
    public static Task<int> GuardAsync(ParseResult parse, Func<Task<int>> body) => body();

    private static async Task RequireMigratedAsync(CatalogStore store, CancellationToken ct)
    {
        await using var connection = await store.OpenAsync(ct);
        var current = await CatalogMigrator.CurrentVersionAsync(connection, ct);
        var latest = Migration.LoadEmbedded()[^1].Version;
        if (current < latest)
            throw new CliFailureException(FailureKind.Usage, $"the catalog schema is at version {current}, this backupd needs {latest}: run `backupd catalog migrate` (the daemon does it at start)");
    }

    /// <summary>
    /// A point in time: ISO 8601 (`2026-11-26`, `2026-11-26T09:30:00Z`, with an offset; no offset = UTC),
    /// or a duration ago (`90m`, `6h`, `2d`).
    /// </summary>
    public static DateTimeOffset ParseTime(string text, string option)
    {
        if (Durations.TryParse(text, out var ago))
            return DateTimeOffset.UtcNow - ago;
        if (DateTimeOffset.TryParse(text, System.Globalization.CultureInfo.InvariantCulture,
                System.Globalization.DateTimeStyles.AssumeUniversal | System.Globalization.DateTimeStyles.AdjustToUniversal, out var at))
            return at;
        throw new CliFailureException(FailureKind.Usage, $"{option} '{text}': expected an ISO 8601 time (2026-11-26T09:30:00Z) or a duration ago (90m, 6h, 2d)");
    }

    /// <summary>
    /// The catalog domain a NAME|UUID names. A name can have been used by several domains over time (a VM
    /// undefined and defined again gets a new UUID): then the most recently seen one is meant, and a note
    /// on stderr names the others (give the UUID to pick one of them).
    /// </summary>
    public static async Task<DomainRow> ResolveDomainAsync(CatalogStore store, string nameOrUuid, CancellationToken ct)
    {
        var found = await store.FindDomainsAsync(nameOrUuid, ct);
        if (found.Count == 0)
            throw new CliFailureException(FailureKind.NotFound, $"the catalog knows no domain '{nameOrUuid}' (by name or UUID); `backupd list` shows those with restore points");
        if (found.Count > 1)
        {
            await Console.Error.WriteLineAsync(
                $"backupd: note: '{nameOrUuid}' was also the name of {string.Join(", ", found.Skip(1).Select(d => $"{d.Uuid} (last seen {Time(d.LastSeen)})"))}; " +
                $"using {found[0].Uuid} (last seen {Time(found[0].LastSeen)}); give a UUID to choose another");
        }
        return found[0];
    }

    public static string Size(long bytes)
    {
        string[] units = ["B", "KiB", "MiB", "GiB", "TiB"];
        double v = bytes;
        var u = 0;
        while (v >= 1024 && u < units.Length - 1) { v /= 1024; u++; }
        return u == 0 ? $"{bytes} B" : $"{v:0.0} {units[u]}";
    }

    public static string Time(DateTime utc) => DateTime.SpecifyKind(utc, DateTimeKind.Utc).ToString("yyyy-MM-dd HH:mm:ss") + "Z";

    public static string Duration(TimeSpan? t) => t is { } d ? (d.TotalSeconds < 60 ? $"{d.TotalSeconds:0.0}s" : d.ToString(@"h\:mm\:ss")) : "-";
}
