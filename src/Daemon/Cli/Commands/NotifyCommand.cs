using System.CommandLine;

using Backupd.Daemon.Notifications;

namespace Backupd.Daemon.Cli.Commands;

/// <summary>`backupd notify test [TARGET]`: sends a test notification to one or every configured target, with the daemon's code path.</summary>
public static class NotifyCommand
{
    public static Command Create()
    {
        var command = new Command("notify", "Notification targets of the daemon configuration");
        var test = new Command("test", "Send a test notification to TARGET (default: every target); exit 1 if one is not delivered");
        var target = new Argument<string?>("TARGET") { Arity = ArgumentArity.ZeroOrOne, Description = "a target name from the configuration's notify: section" };
        test.Arguments.Add(target);
        test.Options.Add(GlobalOptions.Json);
        test.SetAction(async (parse, ct) =>
        {
            var config = GlobalOptions.LoadConfig(parse);
            var name = parse.GetValue(target);
            var targets = name is null ? config.Notify : config.Notify.Where(t => t.Name == name).ToList();
            if (targets.Count == 0)
                throw new CliFailureException(FailureKind.NotFound, name is null
                    ? $"{config.SourcePath}: no notify: targets are configured"
                    : $"{config.SourcePath}: no notify target '{name}' (configured: {string.Join(", ", config.Notify.Select(t => t.Name))})");
            using var loggers = CliLogging.Create();
            using var http = new HttpClient { Timeout = TimeSpan.FromSeconds(30) };
            var notifier = new Notifier(http, loggers.CreateLogger("backupd.notify"));
            var message = new Notification(NotifyEvent.Test, "test notification", $"`backupd notify test` on {Environment.MachineName}: this target works.", null, null, DateTimeOffset.UtcNow);
            var results = new List<TestResult>();
            foreach (var t in targets)
            {
                string? error = null;
                try { await notifier.SendAsync(t, message, ct); }
                catch (Exception e) when (e is not OperationCanceledException || !ct.IsCancellationRequested) { error = e.Message; }
                results.Add(new TestResult(t.Name, t is WebhookTarget ? "webhook" : "email", error is null, error));
                if (!parse.GetValue(GlobalOptions.Json)) Console.WriteLine(error is null ? $"{t.Name}: delivered" : $"{t.Name}: NOT delivered: {error}");
            }
            var failed = results.Count(r => !r.Delivered);
            if (parse.GetValue(GlobalOptions.Json)) JsonOutput.Write(new { targets = results, failed });
            return failed == 0 ? ExitCodes.Ok : ExitCodes.Failed;
        });
        command.Subcommands.Add(test);
        return command;
    }

    private sealed record TestResult(string Target, string Kind, bool Delivered, string? Error);
}
