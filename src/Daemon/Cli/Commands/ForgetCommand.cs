using System.CommandLine;
using Backupd.Daemon.Cli.Catalog;
using Backupd.Daemon.Maintenance;
using Backupd.Storage.Catalog;

namespace Backupd.Daemon.Cli.Commands;

/// <summary>
/// `backupd forget POINT`: deletes one restore point, any point (the newest too), from its repository and
/// the catalog, with a retention event saying who removed it. Holds the domain's lock, so it never runs
/// beside a backup of that domain, here or on another host.
/// </summary>
public static class ForgetCommand
{
    public static Command Create()
    {
        var point = new Argument<string>("POINT") { Description = "Restore point id (from `backupd list`)" };
        var command = new Command("forget", "Delete one restore point from its repository and the catalog");
        command.Arguments.Add(point);
        command.Options.Add(GlobalOptions.Json);
        command.SetAction((parse, ct) => CatalogCli.RunAsync(parse, async (store, config) =>
        {
            var id = parse.GetValue(point)!;
            var detail = await store.GetPointAsync(id, ct)
                ?? throw new CliFailureException(FailureKind.NotFound,
                    $"no restore point '{id}' in the catalog (`backupd list` shows them; a point written with --no-catalog needs `backupd catalog rebuild` first)");
            var p = detail.Point;
            // Opening a repository creates a missing one: never do that for a deletion.
            if (!RepositoryCli.IsRepository(p.Repository))
                throw new CliFailureException(FailureKind.NotFound,
                    $"restore point '{id}' is recorded in {p.Repository}, but there is no repository there any more (moved? `backupd catalog rebuild --repository DIR` records it where it is now)");
            // On a terminal a status line says what it waits for (the domain's lock: a backup may hold it) and does.
            await TerminalProgress.WithStatusAsync(parse.GetValue(GlobalOptions.Json), $"forget: waiting for the lock of {p.DomainName}", async status =>
            {
                await using (await CatalogDomainLock.AcquireAsync(config.CatalogConnectionString, p.DomainUuid, p.DomainName, ProcessIdentity.Current, ct))
                {
                    status($"forget: removing {p.Id} of {p.DomainName} from {p.Repository}");
                    var who = Environment.UserName;
                    await new RepositoryPointStore(store).DeleteAsync(p.Repository,
                        new StoredPoint(p.DomainUuid.ToString(), p.DomainName, p.Id, new DateTimeOffset(p.CreatedAt, TimeSpan.Zero)),
                        $"forgotten by {who} (backupd forget)", ct);
                }
                return true;
            });
            if (parse.GetValue(GlobalOptions.Json))
                JsonOutput.Write(new { point = p.Id, domain = p.DomainName, domainUuid = p.DomainUuid, repository = p.Repository, removed = true });
            else
                Console.WriteLine($"removed restore point {p.Id} of {p.DomainName} (taken {CatalogCli.Time(p.CreatedAt)}) from {p.Repository} and the catalog");
            return ExitCodes.Ok;
        }, ct));
        return command;
    }
}
